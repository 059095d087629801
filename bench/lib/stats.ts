/** Latency statistics for the perf harness: plain numbers in, plain numbers out. */

export interface Summary {
  count: number
  min: number
  mean: number
  p50: number
  p90: number
  p99: number
  max: number
}

/**
 * The q-quantile (0..1) of ascending values, interpolating linearly between the two closest ranks
 * (numpy's default), so p50 of [1, 2] is 1.5 and small samples do not jump between neighbours.
 */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length
  if (n === 0) return Number.NaN
  if (q <= 0) return sorted[0] as number
  if (q >= 1) return sorted[n - 1] as number
  const rank = q * (n - 1)
  const low = Math.floor(rank)
  const high = Math.min(n - 1, low + 1)
  const a = sorted[low] as number
  const b = sorted[high] as number
  return a + (b - a) * (rank - low)
}

/** Count, min, mean, p50, p90, p99 and max; NaN everywhere (count 0) for no samples. */
export function summarize(samples: ArrayLike<number>): Summary {
  const sorted = Float64Array.from(samples).sort()
  const n = sorted.length
  let sum = 0
  for (let i = 0; i < n; i++) sum += sorted[i] as number
  return {
    count: n,
    min: n ? (sorted[0] as number) : Number.NaN,
    mean: n ? sum / n : Number.NaN,
    p50: quantile(sorted, 0.5),
    p90: quantile(sorted, 0.9),
    p99: quantile(sorted, 0.99),
    max: n ? (sorted[n - 1] as number) : Number.NaN,
  }
}

/** A growable list of doubles without boxing each sample (millions of chunk latencies fit). */
export class Samples {
  private data: Float64Array
  private n = 0

  constructor(initial = 1024) {
    this.data = new Float64Array(Math.max(16, initial))
  }

  get length(): number {
    return this.n
  }

  push(value: number): void {
    if (this.n === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2)
      bigger.set(this.data)
      this.data = bigger
    }
    this.data[this.n++] = value
  }

  values(): Float64Array {
    return this.data.subarray(0, this.n)
  }

  summary(): Summary {
    return summarize(this.values())
  }
}
