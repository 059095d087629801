import { describe, expect, it } from 'vitest'
import { type CpuProfile, originOf, summarizeCpuProfile } from '../../bench/lib/cpu-profile.js'

const frame = (functionName: string, url = '', lineNumber = 0) => ({ functionName, url, lineNumber })

const profile: CpuProfile = {
  startTime: 0,
  endTime: 10_000,
  nodes: [
    { id: 1, callFrame: frame('(root)'), children: [2, 3, 4, 5] },
    { id: 2, callFrame: frame('(idle)') },
    { id: 3, callFrame: frame('handle', 'file:///repo/dist/proxy/server.js', 41), children: [6] },
    { id: 4, callFrame: frame('stringify', 'file:///repo/node_modules/pino/lib/tools.js', 9) },
    { id: 5, callFrame: frame('(garbage collector)') },
    { id: 6, callFrame: frame('write', 'node:net', 5), children: [7] },
    { id: 7, callFrame: frame('writev') },
  ],
  // Each sample stands for the time until the next one.
  samples: [2, 3, 3, 4, 5, 7, 2],
  timeDeltas: [0, 4000, 1000, 2000, 1000, 2000, 3000],
}

describe('perf CPU profile summary', () => {
  it('names where code comes from', () => {
    expect(originOf('node:internal/streams/readable', 'read')).toBe('node')
    expect(originOf('file:///x/node_modules/undici/lib/a.js', 'f')).toBe('undici')
    expect(originOf('file:///x/node_modules/@oclif/core/lib/a.js', 'f')).toBe('@oclif/core')
    expect(originOf('file:///work/main/dist/proxy/server.js', 'f')).toBe('velo')
    expect(originOf('', '(garbage collector)')).toBe('(garbage collector)')
    expect(originOf('', 'now')).toBe('(native)')
  })

  it('sums self time from the sample timeline and leaves idle out of the busy share', () => {
    const summary = summarizeCpuProfile(profile, { root: '/repo' })
    expect(summary.idleMs).toBe(4)
    expect(summary.busyMs).toBe(9)
    expect(summary.gcMs).toBe(2)
    expect(summary.top[0]).toMatchObject({ name: 'handle', location: 'dist/proxy/server.js:42', selfMs: 3 })
    expect(summary.top[0]?.share).toBeCloseTo(1 / 3)
    // writev ties with handle at 3 ms; the sort is stable, so the profile's node order decides.
    expect(summary.top.map((fn) => fn.name)).toEqual(['handle', 'writev', '(garbage collector)', 'stringify'])
    expect(summary.byOrigin.map((o) => o.origin)).toContain('velo')
    expect(summary.top.find((fn) => fn.name === 'stringify')?.location).toBe('pino/lib/tools.js:10')
  })

  it('charges native and Node work to the nearest velo or package frame that called it', () => {
    const summary = summarizeCpuProfile(profile, { root: '/repo' })
    // handle's own 3 ms plus the 3 ms of writev under it (through node:net write).
    expect(summary.owners[0]).toMatchObject({ name: 'handle', origin: 'velo', selfMs: 6 })
    expect(summary.owners.map((fn) => fn.name)).toEqual(['handle', 'stringify'])
  })

  it('falls back to hit counts when there is no timeline', () => {
    const summary = summarizeCpuProfile({
      startTime: 0,
      endTime: 4000,
      nodes: [
        { id: 1, callFrame: frame('a', 'node:x'), hitCount: 3 },
        { id: 2, callFrame: frame('(idle)'), hitCount: 1 },
      ],
    })
    expect(summary.totalMs).toBe(4)
    expect(summary.top[0]).toMatchObject({ name: 'a', selfMs: 3, share: 1 })
  })
})
