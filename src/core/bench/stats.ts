import type { Summary } from './types.js'

/**
 * Percentile by linear interpolation between the closest ranks (numpy's default), so p50 of
 * [1, 2, 3, 4] is 2.5. `sorted` must be ascending and non-empty; `p` is 0..100.
 */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) throw new RangeError('percentile of no values')
  const rank = (Math.min(100, Math.max(0, p)) / 100) * (sorted.length - 1)
  const low = Math.floor(rank)
  const high = Math.ceil(rank)
  const lowValue = sorted[low] ?? 0
  const highValue = sorted[high] ?? lowValue
  return lowValue + (highValue - lowValue) * (rank - low)
}

export function mean(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN
  let sum = 0
  for (const value of values) sum += value
  return sum / values.length
}

/** Sample standard deviation (n - 1); 0 for a single value. */
export function stddev(values: readonly number[]): number {
  if (values.length < 2) return 0
  const m = mean(values)
  let squares = 0
  for (const value of values) squares += (value - m) ** 2
  return Math.sqrt(squares / (values.length - 1))
}

export function median(values: readonly number[]): number {
  return percentile(
    [...values].sort((a, b) => a - b),
    50,
  )
}

/**
 * Robust spread: the median absolute deviation from the median, scaled by 1.4826 so that it estimates
 * the standard deviation of normally distributed values. One wild value moves it as little as it
 * moves the median; 0 for fewer than two values.
 */
export function robustSpread(values: readonly number[]): number {
  if (values.length < 2) return 0
  const center = median(values)
  return 1.4826 * median(values.map((value) => Math.abs(value - center)))
}

/** count, mean, median, p90, p99, stddev, min and max of finite values; undefined when there are none. */
export function summarize(values: readonly number[]): Summary | undefined {
  const finite = values.filter((value) => Number.isFinite(value))
  if (finite.length === 0) return undefined
  const sorted = [...finite].sort((a, b) => a - b)
  return {
    count: sorted.length,
    mean: mean(sorted),
    median: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    stddev: stddev(sorted),
    min: sorted[0] ?? 0,
    max: sorted[sorted.length - 1] ?? 0,
  }
}

/** Equal-width histogram of values: `bins` buckets from min to max. */
export function histogram(
  values: readonly number[],
  bins: number,
): { from: number; to: number; count: number }[] {
  const finite = values.filter((value) => Number.isFinite(value))
  if (finite.length === 0 || bins < 1) return []
  const low = Math.min(...finite)
  const high = Math.max(...finite)
  const width = high > low ? (high - low) / bins : 1
  const buckets = Array.from({ length: bins }, (_, index) => ({
    from: low + index * width,
    to: low + (index + 1) * width,
    count: 0,
  }))
  for (const value of finite) {
    const index = Math.min(bins - 1, Math.floor((value - low) / width))
    const bucket = buckets[index]
    if (bucket) bucket.count += 1
  }
  return buckets
}

/** A small deterministic PRNG (mulberry32), so a seeded run makes the same prompts and arrivals. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Gaps between arrivals: exponential (a Poisson process) or constant, with mean 1/rate seconds. */
export function arrivalGapsMs(
  rate: number,
  kind: 'poisson' | 'constant',
  random: () => number,
): () => number {
  const meanMs = 1000 / rate
  if (kind === 'constant') return () => meanMs
  return () => -Math.log(1 - random()) * meanMs
}
