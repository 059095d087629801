import { describe, expect, it } from 'vitest'
import {
  alternate,
  judgeSearch,
  measuredSpeedup,
  shuffled,
  verdictLines,
  withinNoise,
} from '../../bench/optimize-verdict.js'

describe('optimize vs grid verdict', () => {
  const base = {
    optimizeHeadToHead: [96, 98, 97, 99],
    gridHeadToHead: [100, 101, 99, 100],
    optimizeAsFound: 97,
    gridAsFound: 110,
    optimizeTrials: 30,
    gridTrials: 352,
  }

  it('judges quality on the head-to-head medians and trials against a quarter of the grid', () => {
    const verdict = judgeSearch(base)
    expect(verdict.ratio).toBeCloseTo(97.5 / 100)
    expect(verdict.ratioAsFound).toBeCloseTo(97 / 110)
    expect(verdict).toMatchObject({ qualityOk: true, trialsOk: true })
    expect(judgeSearch({ ...base, optimizeHeadToHead: [90, 91, 92, 93] }).qualityOk).toBe(false)
    expect(judgeSearch({ ...base, optimizeTrials: 88 }).trialsOk).toBe(true)
    expect(judgeSearch({ ...base, optimizeTrials: 89 }).trialsOk).toBe(false)
    expect(verdictLines(judgeSearch({ ...base, optimizeTrials: 89 })).join('\n')).toMatch(/FAIL/)
  })

  it('agrees within noise when one median lies in the other’s spread', () => {
    const reported = { median: 1.2, low: 1.1, high: 1.3 }
    expect(withinNoise(reported, { median: 1.25, low: 1.25, high: 1.25 })).toBe(true)
    expect(withinNoise({ median: 1.2, low: 1.2, high: 1.2 }, { median: 1.3, low: 1.15, high: 1.4 })).toBe(
      true,
    )
    expect(withinNoise(reported, { median: 1.5, low: 1.45, high: 1.55 })).toBe(false)
  })

  it('takes the bench speedup from the medians with the quartile spread', () => {
    const s = measuredSpeedup([100, 100, 100, 100], [120, 120, 120, 120])
    expect(s).toEqual({ median: 1.2, low: 1.2, high: 1.2 })
    const noisy = measuredSpeedup([90, 100, 110, 100], [110, 120, 130, 120])
    expect(noisy.low).toBeLessThan(noisy.median)
    expect(noisy.high).toBeGreaterThan(noisy.median)
  })

  it('alternates and shuffles reproducibly', () => {
    expect(alternate(['a', 'b'], 3)).toEqual(['a', 'b', 'a', 'b', 'a', 'b'])
    const items = Array.from({ length: 20 }, (_, i) => i)
    const once = shuffled(items, 1)
    expect(once).toEqual(shuffled(items, 1))
    expect(once).not.toEqual(items)
    expect([...once].sort((a, b) => a - b)).toEqual(items)
    expect(shuffled(items, 2)).not.toEqual(once)
  })
})
