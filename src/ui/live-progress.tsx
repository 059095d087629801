import { render, Static, Text } from 'ink'
import type { ReactElement } from 'react'
import type { BenchProgress } from '../core/bench/types.js'
import type { OptimizeEvent } from '../core/optimize/optimize.js'
import { bestLabel, eventLine, liveLine } from '../core/optimize/render.js'
import { BenchProgressView, initialBenchProgress, reduceBenchProgress } from './BenchProgressView.js'
import {
  initialOptimizeProgress,
  OptimizeProgressView,
  reduceOptimizeProgress,
} from './OptimizeProgressView.js'
import { createProgress } from './progress.js'
import { canDrawLive } from './terminal.js'

export interface ProgressOutput {
  /** Where progress goes: stderr, so that stdout (the report, `--json`) stays clean. */
  stream?: NodeJS.WriteStream | undefined
  env?: NodeJS.ProcessEnv | undefined
  color?: boolean | undefined
}

export interface LiveRegion<State> {
  update(change: (state: State) => State): void
  /** A permanent line, printed above the live view. */
  log(line: string): void
  /** Draw the last frame and leave it on screen. Safe to call twice. */
  close(): void
}

/**
 * Draw `view(state)` with Ink under whatever the stream shows above it, redrawn on each update;
 * permanent lines go above it through Ink's Static so that the two never overwrite each other.
 * `tickMs` redraws on a clock as well, for figures that change without events (time left).
 */
export function renderLiveRegion<State>(options: {
  stream: NodeJS.WriteStream
  initial: State
  view: (state: State, frame: { now: number; width: number }) => ReactElement
  tickMs?: number | undefined
}): LiveRegion<State> {
  const { stream } = options
  let state = options.initial
  let closed = false
  const lines: { id: number; text: string }[] = []
  const frame = () => (
    <>
      <Static items={[...lines]}>{(line) => <Text key={line.id}>{line.text}</Text>}</Static>
      {options.view(state, { now: Date.now(), width: Math.min(120, (stream.columns || 80) - 1) })}
    </>
  )
  const instance = render(frame(), {
    stdout: stream,
    // Ink would otherwise move console output (stdout) onto this stream; nothing here reads keys.
    patchConsole: false,
    exitOnCtrlC: false,
    maxFps: 10,
  })
  const redraw = () => {
    if (!closed) instance.rerender(frame())
  }
  const clock = options.tickMs ? setInterval(redraw, options.tickMs) : undefined
  clock?.unref()
  return {
    update(change) {
      state = change(state)
      redraw()
    },
    log(text) {
      lines.push({ id: lines.length, text })
      redraw()
    },
    close() {
      if (closed) return
      redraw()
      closed = true
      if (clock) clearInterval(clock)
      instance.unmount()
    },
  }
}

export interface BenchProgressDisplay {
  event(progress: BenchProgress): void
  /** The closing line (`bench finished`, `stopped: ...`); ends the live view. */
  done(message: string): void
  /** End the live view without a closing line (the run threw). */
  close(): void
}

/** bench's progress on stderr: the live ProgressView on a terminal, plain lines elsewhere (CI, pipes). */
export function benchProgress(output: ProgressOutput = {}): BenchProgressDisplay {
  const stream = output.stream ?? process.stderr
  if (!canDrawLive(output.env ?? process.env, stream)) {
    const plain = createProgress(stream, output.env)
    return {
      event: (progress) => plain.update(progress.message, progress.percent),
      done: (message) => plain.done(message),
      close: () => {},
    }
  }
  const region = renderLiveRegion({
    stream,
    initial: initialBenchProgress,
    view: (state, { width }) => <BenchProgressView state={state} width={width} color={output.color} />,
  })
  return {
    event: (progress) => region.update((state) => reduceBenchProgress(state, progress)),
    done(message) {
      region.close()
      stream.write(`${message}\n`)
    },
    close: () => region.close(),
  }
}

export interface OptimizeProgressDisplay {
  event(event: OptimizeEvent): void
  /** A line to keep (waiting for the machine to go idle). */
  note(line: string): void
  close(): void
}

/**
 * optimize's progress on stderr: the live ProgressView (trial n/N, the parameters under test, the
 * best so far, time left) with a permanent line per finished or skipped trial above it on a
 * terminal; the same lines and a line per trial start elsewhere.
 */
export function optimizeProgress(output: ProgressOutput = {}): OptimizeProgressDisplay {
  const stream = output.stream ?? process.stderr
  if (!canDrawLive(output.env ?? process.env, stream)) {
    const plain = createProgress(stream, output.env)
    let best: string | undefined
    return {
      event(event) {
        best = bestLabel(event) ?? best
        const live = liveLine(event, best)
        if (live) {
          const percent =
            event.type === 'trial-start' ? Math.round(((event.seq - 1) / event.maxTrials) * 100) : undefined
          plain.update(live, percent)
        }
        const line = eventLine(event)
        if (line) plain.done(line)
      },
      note: (line) => plain.done(line),
      close: () => {},
    }
  }
  const region = renderLiveRegion({
    stream,
    initial: initialOptimizeProgress,
    view: (state, { now, width }) => (
      <OptimizeProgressView state={state} now={now} width={width} color={output.color} />
    ),
    tickMs: 1000,
  })
  return {
    event(event) {
      const arrived = Date.now()
      region.update((state) => reduceOptimizeProgress(state, event, arrived))
      const line = eventLine(event)
      if (line) region.log(line)
    },
    note: (line) => region.log(line),
    close() {
      region.update((state) => ({ ...state, measuring: false, ended: true }))
      region.close()
    },
  }
}
