import { describe, expect, it } from 'vitest'
import { RestartBackoff } from '../../src/core/process/backoff.js'

const policy = { initialMs: 500, maxMs: 4000, stableMs: 60_000 }

describe('restart backoff', () => {
  it('lets a process that never failed start at once', () => {
    const backoff = new RestartBackoff(policy)
    expect(backoff.failures).toBe(0)
    expect(backoff.remainingMs(1000)).toBe(0)
  })

  it('retries once at once, then doubles the wait with each failure in a row, up to the maximum', () => {
    const backoff = new RestartBackoff(policy)
    const waits: number[] = []
    for (let i = 0; i < 7; i++) {
      backoff.startFailed(10_000)
      waits.push(backoff.delayMs())
    }
    expect(waits).toEqual([0, 500, 1000, 2000, 4000, 4000, 4000])
  })

  it('counts the wait from the last failure', () => {
    const backoff = new RestartBackoff(policy)
    backoff.startFailed(1000)
    backoff.startFailed(2000)
    backoff.startFailed(3000)
    expect(backoff.remainingMs(3000)).toBe(1000)
    expect(backoff.remainingMs(3600)).toBe(400)
    expect(backoff.remainingMs(4000)).toBe(0)
    expect(backoff.remainingMs(9000)).toBe(0)
  })

  it('restarts a server that crashed after a long healthy run at once, forgetting earlier failures', () => {
    const backoff = new RestartBackoff(policy)
    for (let i = 0; i < 4; i++) backoff.startFailed(1000)
    backoff.crashed(policy.stableMs, 100_000)
    expect(backoff.failures).toBe(1)
    expect(backoff.remainingMs(100_000)).toBe(0)
  })

  it('backs off a server that keeps crashing soon after it starts', () => {
    const backoff = new RestartBackoff(policy)
    backoff.crashed(2000, 10_000)
    expect(backoff.remainingMs(10_000)).toBe(0)
    backoff.crashed(2000, 13_000)
    expect(backoff.remainingMs(13_000)).toBe(500)
    backoff.crashed(2000, 16_000)
    expect(backoff.remainingMs(16_000)).toBe(1000)
  })

  it('forgives failures after a planned stop of a stable run, not after a short one', () => {
    const backoff = new RestartBackoff(policy)
    backoff.startFailed(0)
    backoff.startFailed(0)
    backoff.ran(1000)
    expect(backoff.failures).toBe(2)
    backoff.ran(policy.stableMs)
    expect(backoff.failures).toBe(0)
  })

  it('starts over after a reset', () => {
    const backoff = new RestartBackoff(policy)
    for (let i = 0; i < 5; i++) backoff.startFailed(1000)
    backoff.reset()
    expect(backoff.failures).toBe(0)
    expect(backoff.remainingMs(1000)).toBe(0)
  })
})
