import { describe, expect, it } from 'vitest'
import {
  measureQuietly,
  otherCores,
  parseProcStat,
  parseSystemBusy,
  snapshotCpu,
  treeTicks,
} from '../../src/core/optimize/quiet.js'

describe('other work on the machine', () => {
  it('reads a process line, even with spaces and parentheses in the command name', () => {
    const line = '4242 (tmux: server (1)) S 1 4242 4242 0 -1 4194560 900 0 0 0 150 25 7 3 20 0 1 0 100 0 0'
    expect(parseProcStat(line)).toEqual({ pid: 4242, ppid: 1, ticks: 150 + 25 + 7 + 3 })
    expect(parseProcStat('garbage')).toBeUndefined()
    expect(parseProcStat('12 (x) S nope')).toBeUndefined()
  })

  it('sums the busy ticks of all CPUs, leaving idle and iowait out', () => {
    const stat = 'cpu  100 5 40 9000 60 2 3 1 0 0\ncpu0 50 2 20 4500 30 1 1 0 0 0\nintr 1\n'
    expect(parseSystemBusy(stat)).toBe(100 + 5 + 40 + 2 + 3 + 1)
    expect(parseSystemBusy('intr 1\n')).toBeUndefined()
  })

  it('counts a process tree: the root, its children and theirs, not its parent or siblings', () => {
    const entries = [
      { pid: 1, ppid: 0, ticks: 1000 },
      { pid: 10, ppid: 1, ticks: 5 },
      { pid: 11, ppid: 10, ticks: 7 },
      { pid: 12, ppid: 11, ticks: 11 },
      { pid: 20, ppid: 1, ticks: 500 },
    ]
    expect(treeTicks(entries, 10)).toBe(5 + 7 + 11)
    expect(treeTicks(entries, 99)).toBe(0)
  })

  it('takes the machine’s busy time less its own as the others’ share', () => {
    const before = { atMs: 0, system: 1000, own: 300 }
    // 2 s: the machine was busy 300 ticks (3 CPU-seconds), this tree 100 of them.
    expect(otherCores(before, { atMs: 2000, system: 1300, own: 400 })).toBeCloseTo(1)
    // Never negative (our children's time lands when they are reaped).
    expect(otherCores(before, { atMs: 2000, system: 1010, own: 400 })).toBe(0)
    expect(otherCores(before, before)).toBe(0)
  })

  it('snapshots this machine', async () => {
    const a = await snapshotCpu()
    expect(a).toBeDefined()
    if (!a) return
    expect(a.system).toBeGreaterThan(0)
    expect(a.own).toBeGreaterThan(0)
  })

  it('measures again while others disturb the trial and keeps going once the limit allows it', async () => {
    let runs = 0
    const retried: number[] = []
    const measure = async () => ++runs
    // A limit below zero: every attempt counts as disturbed, so all 1 + 2 attempts run.
    const disturbed = await measureQuietly(measure, {
      maxOtherCores: -1,
      waitMs: 0,
      retries: 2,
      onRetry: (_cores, attempt) => retried.push(attempt),
    })
    expect(runs).toBe(3)
    expect(disturbed.attempts).toBe(3)
    expect(retried).toEqual([1, 2])
    expect(disturbed.otherCores).toBeGreaterThanOrEqual(0)
    // No limit: one attempt.
    runs = 0
    const clean = await measureQuietly(measure, {
      maxOtherCores: Number.POSITIVE_INFINITY,
      waitMs: 0,
      retries: 2,
    })
    expect(clean).toMatchObject({ value: 1, attempts: 1 })
  })
})
