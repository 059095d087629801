import { render } from 'ink-testing-library'
import { afterEach, describe, expect, it, vi } from 'vitest'

vi.hoisted(() => {
  process.env['FORCE_COLOR'] = '1'
})

import { ProgressView } from '../../src/ui/ProgressView.js'
import { createProgress, renderBar } from '../../src/ui/progress.js'

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
