import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  arrivalGapsMs,
  histogram,
  mean,
  median,
  percentile,
  robustSpread,
  seededRandom,
  stddev,
  summarize,
} from '../../src/core/bench/stats.js'

describe('bench statistics', () => {
  it('interpolates percentiles between the closest ranks', () => {
    const sorted = [1, 2, 3, 4]
    expect(percentile(sorted, 50)).toBe(2.5)
    expect(percentile(sorted, 0)).toBe(1)
    expect(percentile(sorted, 100)).toBe(4)
    expect(percentile([10, 20, 30, 40, 50, 60, 70, 80, 90, 100], 90)).toBeCloseTo(91)
    expect(percentile([10, 20, 30, 40, 50, 60, 70, 80, 90, 100], 99)).toBeCloseTo(99.1)
    expect(percentile([7], 99)).toBe(7)
  })

  it('summarizes known values exactly', () => {
    const summary = summarize([5, 1, 4, 2, 3])
    expect(summary).toEqual({
      count: 5,
      mean: 3,
      median: 3,
      p90: 4.6,
      p99: expect.closeTo(4.96, 10),
      stddev: expect.closeTo(Math.sqrt(2.5), 10),
      min: 1,
      max: 5,
    })
  })

  it('uses the sample standard deviation and gives 0 for one value', () => {
    expect(stddev([2, 4, 4, 4, 5, 5, 7, 9])).toBeCloseTo(2.138, 3)
    expect(stddev([3])).toBe(0)
    expect(mean([1, 2, 3, 4])).toBe(2.5)
    expect(median([9, 1, 5])).toBe(5)
  })

  it('summarizes nothing as undefined and ignores non-finite values', () => {
    expect(summarize([])).toBeUndefined()
    expect(summarize([Number.NaN, Number.POSITIVE_INFINITY])).toBeUndefined()
    expect(summarize([1, Number.NaN, 3])?.count).toBe(2)
  })

  it('keeps min <= median <= p90 <= p99 <= max for any values', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: -1e6, max: 1e6, noNaN: true }), { minLength: 1, maxLength: 200 }),
        (values) => {
          const summary = summarize(values)
          if (!summary) return false
          return (
            summary.min <= summary.median &&
            summary.median <= summary.p90 &&
            summary.p90 <= summary.p99 &&
            summary.p99 <= summary.max &&
            summary.stddev >= 0
          )
        },
      ),
    )
  })

  it('puts every value in exactly one histogram bucket', () => {
    const buckets = histogram([1, 2, 2, 3, 10], 3)
    expect(buckets).toHaveLength(3)
    expect(buckets.reduce((sum, bucket) => sum + bucket.count, 0)).toBe(5)
    expect(buckets[0]).toMatchObject({ from: 1, count: 4 })
    expect(buckets[2]).toMatchObject({ to: 10, count: 1 })
    expect(histogram([4, 4, 4], 5).reduce((sum, bucket) => sum + bucket.count, 0)).toBe(3)
  })

  it('repeats the same random sequence for the same seed', () => {
    const a = seededRandom(7)
    const b = seededRandom(7)
    const c = seededRandom(8)
    const first = [a(), a(), a()]
    expect([b(), b(), b()]).toEqual(first)
    expect([c(), c(), c()]).not.toEqual(first)
    for (const value of first) expect(value >= 0 && value < 1).toBe(true)
  })

  it('spaces constant arrivals evenly and Poisson arrivals with the right mean', () => {
    const constant = arrivalGapsMs(4, 'constant', seededRandom(1))
    expect([constant(), constant()]).toEqual([250, 250])
    const poisson = arrivalGapsMs(10, 'poisson', seededRandom(3))
    const gaps = Array.from({ length: 20_000 }, poisson)
    expect(mean(gaps)).toBeGreaterThan(95)
    expect(mean(gaps)).toBeLessThan(105)
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(0)
    // An exponential distribution's standard deviation equals its mean.
    expect(stddev(gaps) / mean(gaps)).toBeCloseTo(1, 1)
  })

  it('measures a robust spread that one wild value barely moves', () => {
    // Median 3, absolute deviations 2 1 0 1 2: MAD 1, scaled to a standard deviation.
    expect(robustSpread([1, 2, 3, 4, 5])).toBeCloseTo(1.4826)
    expect(robustSpread([1, 2, 3, 4, 500])).toBeCloseTo(1.4826)
    expect(robustSpread([7])).toBe(0)
    expect(robustSpread([])).toBe(0)
  })
})
