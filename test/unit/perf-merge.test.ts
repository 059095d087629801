import { describe, expect, it } from 'vitest'
import type { LoadResult } from '../../bench/lib/load-types.js'
import { mergeResults, roundOrder } from '../../bench/lib/merge.js'
import { summarize } from '../../bench/lib/stats.js'

function run(latency: number[], elapsedMs: number, extra: Partial<LoadResult> = {}): LoadResult {
  return {
    ok: latency.length,
    errors: 0,
    retries: 0,
    elapsedMs,
    rps: latency.length / (elapsedMs / 1000),
    latency: summarize(latency),
    statuses: { '200': latency.length },
    firstError: undefined,
    byHeader: undefined,
    ttfb: undefined,
    chunkOneWay: undefined,
    chunkGap: undefined,
    events: 0,
    ttft: undefined,
    completionTokens: 0,
    tokensPerSecond: 0,
    raw: { latency, ttfb: [] },
    ...extra,
  }
}

describe('perf merge', () => {
  it('mirrors the target order every other round', () => {
    expect(roundOrder(['a', 'b', 'c'], 0)).toEqual(['a', 'b', 'c'])
    expect(roundOrder(['a', 'b', 'c'], 1)).toEqual(['c', 'b', 'a'])
    expect(roundOrder(['a', 'b', 'c'], 2)).toEqual(['a', 'b', 'c'])
  })

  it('adds counts and time and pools percentiles from the samples', () => {
    const merged = mergeResults([
      run([1, 2, 3], 1000, { completionTokens: 30, errors: 1, statuses: { '200': 3, '500': 1 } }),
      run([4, 5], 1000, { completionTokens: 10, firstError: 'boom' }),
    ])
    expect(merged).toMatchObject({ ok: 5, errors: 1, elapsedMs: 2000, rps: 2.5, completionTokens: 40 })
    expect(merged.tokensPerSecond).toBe(20)
    expect(merged.statuses).toEqual({ '200': 5, '500': 1 })
    expect(merged.latency.p50).toBe(3)
    expect(merged.latency.max).toBe(5)
    expect(merged.firstError).toBe('boom')
    expect(merged.ttfb).toBeUndefined()
  })

  it('pools latencies split by header value', () => {
    const a = run([1, 2], 1000, { raw: { latency: [1, 2], 'header:hit': [1], 'header:miss': [2] } })
    const b = run([3], 1000, { raw: { latency: [3], 'header:hit': [3] } })
    const merged = mergeResults([a, b])
    expect(merged.byHeader?.['hit']?.count).toBe(2)
    expect(merged.byHeader?.['miss']?.count).toBe(1)
  })

  it('returns a single run as it is and refuses none', () => {
    const one = run([1], 1000)
    expect(mergeResults([one])).toBe(one)
    expect(() => mergeResults([])).toThrow(/no results/)
  })
})
