import type { Summary } from '../profiles/schema.js'

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1
    ? (sorted[mid] ?? Number.NaN)
    : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2
}

/** Nearest-rank percentile (p in 0..100). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)))
  return sorted[rank - 1] ?? Number.NaN
}

export function summarize(samples: readonly number[]): Summary {
  return {
    median: median(samples),
    min: Math.min(...samples),
    max: Math.max(...samples),
    samples: [...samples],
  }
}

/**
 * How much better `tuned` is than `baseline` (above 1 is better), with a spread: the ratio of
 * their medians, and the ratios a pessimist and an optimist would take from the interquartile
 * ranges (tuned's lower quartile against baseline's upper, and the reverse). Quartiles rather
 * than extremes, so that one disturbed sample does not decide the spread.
 */
export function speedup(
  baseline: Summary,
  tuned: Summary,
  higherIsBetter: boolean,
): { median: number; low: number; high: number } {
  const b = { q1: percentile(baseline.samples, 25), q3: percentile(baseline.samples, 75) }
  const t = { q1: percentile(tuned.samples, 25), q3: percentile(tuned.samples, 75) }
  if (higherIsBetter) {
    return { median: tuned.median / baseline.median, low: t.q1 / b.q3, high: t.q3 / b.q1 }
  }
  return { median: baseline.median / tuned.median, low: b.q1 / t.q3, high: b.q3 / t.q1 }
}
