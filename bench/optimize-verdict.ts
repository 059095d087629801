/**
 * The judgement of bench/optimize-vs-grid.ts, kept apart from the measuring so it can be tested:
 * does optimize's pick come within 5% of the exhaustive grid's best with at most a quarter of its
 * trials, and does `velo bench` see the speedup the profile reports?
 */
import { speedup, summarize } from '../src/core/optimize/stats.js'

/** Optimize's pick must reach this share of the grid's best (issue 7). */
export const QUALITY_TARGET = 0.95
/** Optimize may use at most this share of the grid's trials (issue 7). */
export const TRIALS_TARGET = 0.25

export interface Spread {
  median: number
  low: number
  high: number
}

export interface SearchVerdict {
  /** Optimize's pick over the grid's best, both measured in the same alternating rounds. */
  ratio: number
  /** The same ratio from the values each run found on its own (the grid's is a max of noisy draws). */
  ratioAsFound: number
  optimizeTrials: number
  gridTrials: number
  qualityOk: boolean
  trialsOk: boolean
}

export function judgeSearch(input: {
  optimizeHeadToHead: readonly number[]
  gridHeadToHead: readonly number[]
  optimizeAsFound: number
  gridAsFound: number
  optimizeTrials: number
  gridTrials: number
}): SearchVerdict {
  const ratio = summarize(input.optimizeHeadToHead).median / summarize(input.gridHeadToHead).median
  return {
    ratio,
    ratioAsFound: input.optimizeAsFound / input.gridAsFound,
    optimizeTrials: input.optimizeTrials,
    gridTrials: input.gridTrials,
    qualityOk: ratio >= QUALITY_TARGET,
    trialsOk: input.optimizeTrials <= input.gridTrials * TRIALS_TARGET,
  }
}

/** Tuned over defaults from `velo bench` runs (higher is better), with the quartile spread optimize uses. */
export function measuredSpeedup(defaults: readonly number[], tuned: readonly number[]): Spread {
  return speedup(summarize(defaults), summarize(tuned), true)
}

/**
 * Two speedups agree within noise when either one's median lies inside the other's spread: a
 * difference smaller than what the repeated measurements of one of them already vary by.
 */
export function withinNoise(reported: Spread, measured: Spread): boolean {
  const inside = (value: number, spread: Spread): boolean => value >= spread.low && value <= spread.high
  return inside(measured.median, reported) || inside(reported.median, measured)
}

/** Trials in alternating order (a, b, a, b ...), so that drift in the machine's load hits both alike. */
export function alternate<T>(items: readonly T[], rounds: number): T[] {
  const order: T[] = []
  for (let round = 0; round < rounds; round++) order.push(...items)
  return order
}

/** A seeded shuffle (mulberry32 + Fisher-Yates): the grid runs in a random order, the same each run. */
export function shuffled<T>(items: readonly T[], seed: number): T[] {
  let state = seed >>> 0
  const random = (): number => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    const a = out[i]
    const b = out[j]
    if (a === undefined || b === undefined) continue
    out[i] = b
    out[j] = a
  }
  return out
}

const pct = (value: number): string => `${(value * 100).toFixed(1)}%`
const times = (value: number): string => `x${value.toFixed(2)}`

export function spreadText(spread: Spread): string {
  return `${times(spread.median)} (spread ${times(spread.low)} .. ${times(spread.high)})`
}

export function verdictLines(verdict: SearchVerdict): string[] {
  const mark = (ok: boolean): string => (ok ? 'PASS' : 'FAIL')
  return [
    `  optimize's pick vs the grid's best, re-measured head to head: ${pct(verdict.ratio)} (target >= ${pct(QUALITY_TARGET)}) ${mark(verdict.qualityOk)}`,
    `  (as each run found them: ${pct(verdict.ratioAsFound)}; the grid's figure is the best of many noisy draws)`,
    `  trials: optimize ${verdict.optimizeTrials}, grid ${verdict.gridTrials} = ${pct(verdict.optimizeTrials / verdict.gridTrials)} (target <= ${pct(TRIALS_TARGET)}) ${mark(verdict.trialsOk)}`,
  ]
}

export function speedupLines(reported: Spread, measured: Spread): string[] {
  return [
    `  speedup over defaults reported by the profile: ${spreadText(reported)}`,
    `  speedup over defaults measured by velo bench:   ${spreadText(measured)}`,
    `  within noise (one median inside the other's spread): ${withinNoise(reported, measured) ? 'PASS' : 'FAIL'}`,
  ]
}
