import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { delayedProgress } from '../../src/ui/delayed-progress.js'
import { createProgress, type ProgressReporter } from '../../src/ui/progress.js'

/** `velo detect` shows progress only after this long (src/commands/detect.ts). */
const DELAY_MS = 300

function recorder(): ProgressReporter & { lines: string[] } {
  const lines: string[] = []
  return {
    lines,
    update: (message) => lines.push(`update ${message}`),
    done: (message) => lines.push(`done ${message}`),
  }
}

/** A stand-in for a terminal's stderr: isTTY, a width, and what was written to it. */
function fakeTty(): NodeJS.WriteStream & { written: string } {
  const stream = {
    isTTY: true,
    columns: 80,
    written: '',
    write(chunk: string) {
      stream.written += chunk
      return true
    },
  }
  return stream as unknown as NodeJS.WriteStream & { written: string }
}

beforeEach(() => {
  vi.useFakeTimers()
})
afterEach(() => {
  vi.useRealTimers()
})

describe('delayed progress (velo detect)', () => {
  it('prints nothing for a run that ends before the delay, not even later', () => {
    const out = recorder()
    const progress = delayedProgress(out, DELAY_MS)
    progress.update('probing CPU, memory, GPUs, backends and models')
    vi.advanceTimersByTime(DELAY_MS - 1)
    progress.done('probed in 0.3 s')
    vi.advanceTimersByTime(10 * DELAY_MS)
    expect(out.lines).toEqual([])
    expect(progress.shown).toBe(false)
  })

  it('shows the current phase once the delay passes, then each new phase and the closing line', () => {
    const out = recorder()
    const progress = delayedProgress(out, DELAY_MS)
    progress.update('probing CPU')
    progress.update('measuring main-memory bandwidth')
    expect(out.lines).toEqual([])
    vi.advanceTimersByTime(DELAY_MS)
    expect(out.lines).toEqual(['update measuring main-memory bandwidth'])
    progress.update('almost there')
    progress.done('probed in 1.2 s')
    expect(out.lines).toEqual([
      'update measuring main-memory bandwidth',
      'update almost there',
      'done probed in 1.2 s',
    ])
    expect(progress.shown).toBe(true)
  })

  it('waits for a first phase rather than printing an empty line', () => {
    const out = recorder()
    const progress = delayedProgress(out, DELAY_MS)
    vi.advanceTimersByTime(DELAY_MS)
    expect(out.lines).toEqual([])
    progress.update('probing')
    expect(out.lines).toEqual(['update probing'])
  })

  it('prints nothing after stop() when the work failed early', () => {
    const out = recorder()
    const progress = delayedProgress(out, DELAY_MS)
    progress.update('probing')
    progress.stop()
    vi.advanceTimersByTime(10 * DELAY_MS)
    expect(out.lines).toEqual([])
    expect(vi.getTimerCount()).toBe(0)
  })

  it('redraws one line in place on a terminal’s stderr once the delay passes', () => {
    const tty = fakeTty()
    const progress = delayedProgress(createProgress(tty, {}), DELAY_MS)
    progress.update('measuring main-memory bandwidth (at most 2 s)')
    vi.advanceTimersByTime(DELAY_MS - 1)
    expect(tty.written).toBe('')
    vi.advanceTimersByTime(1)
    expect(tty.written).toBe('\r\x1b[2Kmeasuring main-memory bandwidth (at most 2 s)')
    progress.done('probed in 0.9 s')
    expect(tty.written).toBe(
      '\r\x1b[2Kmeasuring main-memory bandwidth (at most 2 s)\r\x1b[2Kprobed in 0.9 s\n',
    )
  })
})
