import { describe, expect, it } from 'vitest'
import { quantile, Samples, summarize } from '../../bench/lib/stats.js'

describe('perf stats', () => {
  it('interpolates quantiles between the two closest ranks', () => {
    expect(quantile([1, 2], 0.5)).toBe(1.5)
    expect(quantile([10, 20, 30, 40, 50], 0.5)).toBe(30)
    expect(quantile([10, 20, 30, 40, 50], 0.9)).toBeCloseTo(46)
    expect(quantile([7], 0.99)).toBe(7)
  })

  it('clamps q to the smallest and largest value', () => {
    expect(quantile([1, 2, 3], 0)).toBe(1)
    expect(quantile([1, 2, 3], 1)).toBe(3)
    expect(quantile([1, 2, 3], -1)).toBe(1)
  })

  it('has no quantile of nothing', () => {
    expect(quantile([], 0.5)).toBeNaN()
    const empty = summarize([])
    expect(empty.count).toBe(0)
    expect(empty.p50).toBeNaN()
    expect(empty.mean).toBeNaN()
  })

  it('summarizes unsorted samples', () => {
    const values = Array.from({ length: 100 }, (_, i) => 100 - i)
    const summary = summarize(values)
    expect(summary).toMatchObject({ count: 100, min: 1, max: 100, mean: 50.5 })
    expect(summary.p50).toBeCloseTo(50.5)
    expect(summary.p99).toBeCloseTo(99.01)
  })

  it('grows Samples past its initial size without losing values', () => {
    const samples = new Samples(16)
    for (let i = 0; i < 1000; i++) samples.push(i)
    expect(samples.length).toBe(1000)
    expect(samples.values()[999]).toBe(999)
    expect(samples.summary()).toMatchObject({ count: 1000, min: 0, max: 999 })
  })
})
