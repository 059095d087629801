import type { Parameters } from '../profiles/schema.js'
import { candidateKey, type Dimension, type SearchSpace } from './space.js'

/** Higher is better; undefined when the candidate failed, broke a constraint or was pruned. */
export type Score = number | undefined

export interface SearchDriver {
  /** Whether a candidate may run at all (valid, fits in memory). The search never measures the others. */
  admissible(candidate: Parameters): boolean
  /** Measure one candidate; 'stop' when the trial or time budget is spent. */
  measure(candidate: Parameters): Promise<Score | 'stop'>
}

export interface SearchOptions {
  /** Descents from random starting points after the first one (from the baseline). */
  restarts: number
  seed: number
  /** A move must beat the current point by this fraction to count: below it is noise. */
  minGain: number
  /** Stop after this many measured trials in a row without a gain above minGain. */
  patience: number
}

export type StopReason = 'converged' | 'budget' | 'early-stop' | 'exhausted'

export interface SearchOutcome {
  best: { candidate: Parameters; score: number } | undefined
  stoppedBecause: StopReason
  /** Every candidate the search scored, by key (cached ones included once). */
  scores: Map<string, Score>
}

/** mulberry32: a seeded generator, so a resumed run picks the same restart points. */
function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function dimensionKeys(dimension: Dimension): Array<keyof Parameters> {
  const keys = new Set<keyof Parameters>()
  for (const option of dimension.options)
    for (const key of Object.keys(option)) keys.add(key as keyof Parameters)
  return [...keys]
}

function withOption(current: Parameters, dimension: Dimension, option: Parameters): Parameters {
  const next: Parameters = { ...current }
  for (const key of dimensionKeys(dimension)) delete next[key]
  return { ...next, ...option }
}

/** Default patience: one full pass over every axis without a gain. */
export function defaultPatience(space: SearchSpace): number {
  return Math.max(
    4,
    space.dimensions.reduce((sum, d) => sum + d.options.length - 1, 0),
  )
}

class Stop {
  constructor(readonly reason: StopReason) {}
}

/**
 * Coordinate descent with random restarts. From a point, each axis in turn is scanned with the
 * others held (every option of the axis is measured) and the point moves to the axis's best
 * option if it beats the current one by more than `minGain`; passes repeat until one moves
 * nothing. Then it starts again from a random unmeasured point. Measurements are cached by
 * candidate, so crossing an already-measured point costs nothing.
 */
export async function coordinateDescent(
  space: SearchSpace,
  start: Parameters,
  driver: SearchDriver,
  options: SearchOptions,
): Promise<SearchOutcome> {
  const scores = new Map<string, Score>()
  let best: SearchOutcome['best']
  let sinceGain = 0

  const evaluate = async (candidate: Parameters): Promise<Score> => {
    const key = candidateKey(candidate)
    if (scores.has(key)) return scores.get(key)
    if (!driver.admissible(candidate)) {
      scores.set(key, undefined)
      return undefined
    }
    const score = await driver.measure(candidate)
    if (score === 'stop') throw new Stop('budget')
    scores.set(key, score)
    if (score !== undefined && (best === undefined || score > best.score)) {
      sinceGain = best === undefined || score > best.score * (1 + options.minGain) ? 0 : sinceGain + 1
      best = { candidate, score }
    } else {
      sinceGain++
    }
    if (sinceGain >= options.patience) throw new Stop('early-stop')
    return score
  }

  const descend = async (from: Parameters): Promise<void> => {
    let current = from
    let currentScore = await evaluate(from)
    for (;;) {
      let moved = false
      for (const dimension of space.dimensions) {
        let axisBest = current
        let axisScore = currentScore
        for (const option of dimension.options) {
          const candidate = withOption(current, dimension, option)
          if (candidateKey(candidate) === candidateKey(current)) continue
          const score = await evaluate(candidate)
          if (score !== undefined && (axisScore === undefined || score > axisScore * (1 + options.minGain))) {
            axisBest = candidate
            axisScore = score
          }
        }
        if (axisBest !== current) {
          current = axisBest
          currentScore = axisScore
          moved = true
        }
      }
      if (!moved) return
    }
  }

  const random = prng(options.seed)
  const randomStart = (): Parameters | undefined => {
    for (let attempt = 0; attempt < 200; attempt++) {
      let candidate: Parameters = {}
      for (const dimension of space.dimensions) {
        const option = dimension.options[Math.floor(random() * dimension.options.length)] ?? {}
        candidate = { ...candidate, ...option }
      }
      if (!scores.has(candidateKey(candidate)) && driver.admissible(candidate)) return candidate
    }
    return undefined
  }

  try {
    await descend(start)
    for (let restart = 0; restart < options.restarts; restart++) {
      const from = randomStart()
      if (!from) return { best, stoppedBecause: 'exhausted', scores }
      await descend(from)
    }
    return { best, stoppedBecause: 'converged', scores }
  } catch (error) {
    if (error instanceof Stop) return { best, stoppedBecause: error.reason, scores }
    throw error
  }
}
