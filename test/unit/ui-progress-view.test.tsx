import { render } from 'ink-testing-library'
import { afterEach, describe, expect, it, vi } from 'vitest'

vi.hoisted(() => {
  process.env['FORCE_COLOR'] = '1'
  // Ink reads CI once, when it loads, and then draws only the last frame. The "on a terminal" cases
  // pass their own env to the progress views; Ink must see the same (no CI) when the suite runs in CI.
  delete process.env['CI']
  delete process.env['CONTINUOUS_INTEGRATION']
})

import type { BenchProgress } from '../../src/core/bench/types.js'
import type { OptimizeEvent } from '../../src/core/optimize/optimize.js'
import {
  BenchProgressView,
  initialBenchProgress,
  reduceBenchProgress,
} from '../../src/ui/BenchProgressView.js'
import { benchProgress, optimizeProgress } from '../../src/ui/live-progress.js'
import {
  initialOptimizeProgress,
  OptimizeProgressView,
  reduceOptimizeProgress,
} from '../../src/ui/OptimizeProgressView.js'
import { ProgressView } from '../../src/ui/ProgressView.js'
import { createProgress, renderBar } from '../../src/ui/progress.js'
import { FakeTerminal } from './ui-render.js'

let unmounts: (() => void)[] = []
afterEach(() => {
  for (const unmount of unmounts) unmount()
  unmounts = []
})

const stages = [
  { label: 'build engine', state: 'done' as const, detail: '12.3s' },
  { label: 'warmup', state: 'running' as const, percent: 50, detail: '3/6 requests' },
  { label: 'measure', state: 'pending' as const },
  { label: 'compare', state: 'skipped' as const, detail: 'no baseline' },
]

function frameOf(element: Parameters<typeof render>[0]) {
  const instance = render(element)
  unmounts.push(instance.unmount)
  return instance.lastFrame() ?? ''
}

describe('ProgressView', () => {
  it('draws one line per stage: glyph, label, a bar while running, the note', () => {
    const frame = frameOf(<ProgressView title="velo bench" stages={stages} color={false} />)
    expect(frame.split('\n')).toEqual([
      'velo bench',
      '✔ build engine  12.3s',
      `› warmup        ${renderBar(50, 20)}  50%  3/6 requests`,
      '· measure',
      '- compare       no baseline',
    ])
  })

  it('shows a failed stage with its reason, in color unless NO_COLOR', () => {
    const failed = [{ label: 'load model', state: 'failed' as const, detail: 'out of memory' }]
    const colored = frameOf(<ProgressView stages={failed} color={true} />)
    expect(colored).toContain('\x1b[31m')
    expect(colored).toContain('out of memory')
    const plain = frameOf(<ProgressView stages={failed} color={false} />)
    expect(plain).toBe('✖ load model  out of memory')
  })

  it('clamps the percent and uses a wider bar on wide terminals', () => {
    const frame = frameOf(
      <ProgressView
        stages={[{ label: 'trials', state: 'running', percent: 140 }]}
        width={120}
        color={false}
      />,
    )
    expect(frame).toContain(`${renderBar(100, 30)} 100%`)
  })

  it('lists the figures under the stages with their labels aligned', () => {
    const frame = frameOf(
      <ProgressView
        stages={[{ label: 'measure', state: 'running' }]}
        facts={[
          { label: 'rate', value: '3.2 req/s' },
          { label: 'TTFT p50', value: '120ms' },
        ]}
        color={false}
      />,
    )
    expect(frame.split('\n')).toEqual(['› measure', '  rate      3.2 req/s', '  TTFT p50  120ms'])
  })
})

// optimize's events as a run of 30 trials with a 10-minute budget sends them, up to trial 7.
const T0 = 1_700_000_000_000
const optimizeRun: OptimizeEvent[] = [
  {
    type: 'start',
    backend: 'llama-server',
    model: 'qwen2.5-7b-q4_k_m.gguf',
    logFile: '/tmp/trials.jsonl',
    resumed: 0,
    gridSize: 240,
    maxTrials: 30,
  },
  { type: 'pruned', label: 'ngl=99 kv=f16', reason: 'needs 9.1GiB of VRAM, 7.2GiB free' },
  { type: 'trial-start', seq: 1, maxTrials: 30, phase: 'baseline', label: 'defaults', timeLeftMs: 600_000 },
  {
    type: 'trial-end',
    seq: 1,
    maxTrials: 30,
    phase: 'baseline',
    label: 'defaults',
    fromLog: false,
    measurement: { value: 38.4, samples: [38.1, 38.4], score: 38.4, feasible: true },
    error: undefined,
    best: { label: 'defaults', value: 38.4 },
    unit: 'tok/s',
    timeLeftMs: 560_000,
  },
  {
    type: 'trial-end',
    seq: 6,
    maxTrials: 30,
    phase: 'search',
    label: 't=4 np=2',
    fromLog: false,
    measurement: { value: 45.2, samples: [45.0, 45.2], score: 45.2, feasible: true },
    error: undefined,
    best: { label: 't=4 np=2', value: 45.2 },
    unit: 'tok/s',
    timeLeftMs: 500_000,
  },
  {
    type: 'trial-start',
    seq: 7,
    maxTrials: 30,
    phase: 'search',
    label: 't=4 np=2 fa=on kv=q8_0',
    timeLeftMs: 492_000,
  },
]

function optimizeState(events: OptimizeEvent[], at = T0) {
  return events.reduce((state, event) => reduceOptimizeProgress(state, event, at), initialOptimizeProgress)
}

describe('OptimizeProgressView', () => {
  it('shows a run mid-way: trial n/N, the parameters under test, the best so far, time left', () => {
    const frame = frameOf(
      <OptimizeProgressView state={optimizeState(optimizeRun)} now={T0 + 2000} color={false} />,
    )
    expect(frame.split('\n')).toEqual([
      'velo optimize qwen2.5-7b-q4_k_m.gguf on llama-server · 240 configurations',
      '✔ baseline',
      `› search    ${renderBar(20, 20)}  20%  trial 7/30`,
      '· confirm',
      '  testing      t=4 np=2 fa=on kv=q8_0',
      '  best so far  45.2 tok/s (t=4 np=2)',
      '  time left    8m10s',
      '  trials       2 done, 1 skipped before starting',
    ])
  })

  it('shows the first trial with no best yet, and no time left without a budget', () => {
    const events: OptimizeEvent[] = [
      optimizeRun[0] as OptimizeEvent,
      {
        type: 'trial-start',
        seq: 1,
        maxTrials: 30,
        phase: 'baseline',
        label: 'defaults',
        timeLeftMs: undefined,
      },
    ]
    const frame = frameOf(<OptimizeProgressView state={optimizeState(events)} now={T0} color={false} />)
    expect(frame).toContain(`› baseline  ${renderBar(0, 20)}   0%  trial 1/30`)
    expect(frame).toContain('· search')
    expect(frame).toContain('  testing      defaults')
    expect(frame).toContain('  best so far  -')
    expect(frame).not.toContain('time left')
  })

  it('marks the phase done once the search is over, and drops the time left', () => {
    const state = { ...optimizeState(optimizeRun), measuring: false, ended: true }
    const frame = frameOf(<OptimizeProgressView state={state} now={T0} color={false} />)
    expect(frame).toContain('✔ search    trial 7/30')
    expect(frame).toContain('- confirm')
    expect(frame).not.toContain('time left')
  })

  it('counts a failed trial and keeps the best of the others', () => {
    const failed: OptimizeEvent = {
      type: 'trial-end',
      seq: 7,
      maxTrials: 30,
      phase: 'search',
      label: 't=4 np=2 fa=on kv=q8_0',
      fromLog: false,
      measurement: undefined,
      error: 'llama-server exited with code 1',
      best: { label: 't=4 np=2', value: 45.2 },
      unit: 'tok/s',
      timeLeftMs: 400_000,
    }
    const frame = frameOf(
      <OptimizeProgressView state={optimizeState([...optimizeRun, failed])} now={T0} color={false} />,
    )
    expect(frame).toContain(`› search    ${renderBar(23, 20)}  23%  trial 7/30`)
    expect(frame).toContain('  last tested  t=4 np=2 fa=on kv=q8_0')
    expect(frame).toContain('  best so far  45.2 tok/s (t=4 np=2)')
    expect(frame).toContain('  trials       3 done, 1 failed, 1 skipped before starting')
  })
})

// bench's events for one model at concurrency 1 and 2, part-way through the second level.
const benchRun: BenchProgress[] = [
  { phase: 'connect', message: 'connecting to http://127.0.0.1:8080', percent: 0 },
  { phase: 'warmup', message: 'velo-tiny: warm-up 1/1', percent: 0 },
  {
    phase: 'level',
    message: 'velo-tiny c=2 rep 1/1: 7/20 requests',
    percent: 67,
    running: {
      model: 'velo-tiny',
      concurrency: 2,
      repetition: 1,
      completed: 6,
      failed: 1,
      requestsPerSec: 3.24,
      outputTokensPerSec: 154.2,
      ttftMedianMs: 118.6,
    },
  },
]

function benchState(events: BenchProgress[]) {
  return events.reduce(reduceBenchProgress, initialBenchProgress)
}

describe('BenchProgressView', () => {
  it('shows the stages reached, the run so far on the running level, and its figures', () => {
    const frame = frameOf(<BenchProgressView state={benchState(benchRun)} color={false} />)
    expect(frame.split('\n')).toEqual([
      'velo bench',
      '✔ connect   connecting to http://127.0.0.1:8080',
      '✔ warm up   velo-tiny: warm-up 1/1',
      `› measure   ${renderBar(67, 20)}  67%  velo-tiny c=2 rep 1/1: 7/20 requests`,
      '  requests  6 done, 1 failed',
      '  rate      3.2 req/s  154 tok/s',
      '  TTFT p50  119ms',
    ])
  })

  it('marks every stage done at the end, and the running one failed when the run stopped', () => {
    const done = frameOf(
      <BenchProgressView
        state={benchState([...benchRun, { phase: 'done', message: 'done', percent: 100 }])}
        color={false}
      />,
    )
    expect(done.split('\n').slice(1)).toEqual([
      '✔ connect   connecting to http://127.0.0.1:8080',
      '✔ warm up   velo-tiny: warm-up 1/1',
      '✔ measure   velo-tiny c=2 rep 1/1: 7/20 requests',
    ])
    const stopped = frameOf(
      <BenchProgressView
        state={benchState([...benchRun, { phase: 'done', message: 'stopped: interrupted', percent: 100 }])}
        color={false}
      />,
    )
    expect(stopped).toContain('✖ measure   stopped: interrupted')
  })
})

/** A stream that records what is written; a terminal or not. */
function recorder(isTTY: boolean) {
  const terminal = new FakeTerminal(100, 40)
  terminal.isTTY = isTTY
  return { terminal, stream: terminal as unknown as NodeJS.WriteStream, text: () => terminal.frames.join('') }
}

describe('bench and optimize progress on a terminal and off it', () => {
  it('optimize on a terminal: draws the view with a line per finished trial above it', () => {
    const { stream, text } = recorder(true)
    const progress = optimizeProgress({ stream, env: {}, color: false })
    for (const event of optimizeRun) progress.event(event)
    progress.note('  waiting for the machine to go idle (other processes use 1.5 cores)')
    progress.close()
    const out = text()
    expect(out).toContain('› search')
    expect(out).toContain('trial 7/30')
    expect(out).toContain('testing      t=4 np=2 fa=on kv=q8_0')
    expect(out).toContain('best so far  45.2 tok/s (t=4 np=2)')
    expect(out).toMatch(/time left {4}8m1\ds/)
    expect(out).toContain('  #1 baseline defaults: 38.4 tok/s')
    expect(out).toContain('  skipped ngl=99 kv=f16: needs 9.1GiB of VRAM, 7.2GiB free')
    expect(out).toContain('waiting for the machine to go idle')
    // The permanent lines are written once, however often the view redraws.
    expect(out.split('#6 search t=4 np=2: 45.2 tok/s')).toHaveLength(2)
    expect(out).toContain('✔ search    trial 7/30')
  })

  it('optimize off a terminal or in CI: the plain lines it always printed, no view', () => {
    for (const [isTTY, env] of [
      [false, {}],
      [true, { CONTINUOUS_INTEGRATION: '1' }],
    ] as const) {
      const { stream, text } = recorder(isTTY)
      const progress = optimizeProgress({ stream, env })
      for (const event of optimizeRun) progress.event(event)
      progress.close()
      expect(text().split('\n')).toEqual([
        expect.stringMatching(/^optimizing qwen2\.5-7b-q4_k_m\.gguf on llama-server: 240 configurations/),
        '  skipped ngl=99 kv=f16: needs 9.1GiB of VRAM, 7.2GiB free',
        '  0% trial 1/30 baseline: defaults · 10m00s left',
        '  #1 baseline defaults: 38.4 tok/s',
        '  #6 search t=4 np=2: 45.2 tok/s',
        ' 20% trial 7/30 search: t=4 np=2 fa=on kv=q8_0 · best 45.2 tok/s (t=4 np=2) · 8m12s left',
        '',
      ])
      expect(text()).not.toContain('›')
    }
  })

  it('bench on a terminal: draws the view, then the closing line after its last frame', () => {
    const { stream, text } = recorder(true)
    const progress = benchProgress({ stream, env: {}, color: false })
    for (const event of benchRun) progress.event(event)
    progress.done('bench finished')
    progress.close()
    const out = text()
    expect(out).toContain('› measure')
    expect(out).toContain('requests  6 done, 1 failed')
    expect(out.trimEnd().endsWith('bench finished')).toBe(true)
  })

  it('bench off a terminal: a plain line per tenth of the run, as before', () => {
    const { stream, text } = recorder(false)
    const progress = benchProgress({ stream, env: {} })
    for (const event of benchRun) progress.event(event)
    progress.done('bench finished')
    expect(text().split('\n')).toEqual([
      '  0% connecting to http://127.0.0.1:8080',
      ' 67% velo-tiny c=2 rep 1/1: 7/20 requests',
      'bench finished',
      '',
    ])
  })
})

describe('createProgress (unchanged API)', () => {
  it('still prints plain lines off a TTY', () => {
    const written: string[] = []
    const stream = { isTTY: false, write: (s: string) => written.push(s) } as unknown as NodeJS.WriteStream
    const progress = createProgress(stream)
    progress.update('downloading', 5)
    progress.update('downloading', 7)
    progress.update('downloading', 15)
    progress.done('done')
    expect(written).toEqual(['  5% downloading\n', ' 15% downloading\n', 'done\n'])
  })
})
