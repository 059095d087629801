import { describe, expect, it } from 'vitest'
import { coordinateDescent, defaultPatience, type SearchDriver } from '../../src/core/optimize/search.js'
import {
  buildSpace,
  candidateKey,
  enumerateGrid,
  invalidReason,
  type SearchSpace,
} from '../../src/core/optimize/space.js'
import { median, percentile, speedup, summarize } from '../../src/core/optimize/stats.js'
import type { Parameters } from '../../src/core/profiles/schema.js'

const space: SearchSpace = buildSpace({
  backend: 'llama-server',
  goal: 'throughput',
  cores: 8,
  minCtx: 2048,
  concurrency: 4,
  layers: 12,
  gpu: false,
})

/** A made-up landscape with interacting axes: more slots help only with enough threads. */
function landscape(c: Parameters): number {
  const threads = c.threads ?? 8
  const parallel = c.parallel ?? 4
  const ubatch = c.ubatch ?? 512
  let score = 100 + 10 * Math.log2(threads) + (threads >= 6 ? 8 * Math.log2(parallel) : -3 * parallel)
  if (c.flashAttention === 'off') score -= 5
  if (c.cacheTypeK === 'q8_0') score += 4
  if (c.cacheTypeK === 'q4_0') score += 1
  score -= Math.abs(Math.log2(ubatch / 256)) * 3
  if ((c.batch ?? 2048) === 1024) score += 2
  return score
}

function driver(options: { fits?: (c: Parameters) => boolean; budget?: number } = {}) {
  const measured: Parameters[] = []
  const d: SearchDriver = {
    admissible: (c) => invalidReason(c) === undefined && (options.fits?.(c) ?? true),
    async measure(c) {
      if (options.budget !== undefined && measured.length >= options.budget) return 'stop'
      measured.push(c)
      return landscape(c)
    },
  }
  return { d, measured }
}

const settings = { restarts: 3, seed: 7, minGain: 0.005, patience: 1000 }

describe('coordinate descent with restarts', () => {
  it('finds the grid’s best (or within 2% of it) with a fraction of the grid’s trials', async () => {
    const grid = enumerateGrid(space)
    const bestOfGrid = Math.max(...grid.map(landscape))
    const { d, measured } = driver()
    const outcome = await coordinateDescent(space, {}, d, settings)
    expect(outcome.best?.score).toBeGreaterThanOrEqual(bestOfGrid * 0.98)
    expect(measured.length).toBeLessThanOrEqual(grid.length / 4)
    // Never the same candidate twice.
    expect(new Set(measured.map(candidateKey)).size).toBe(measured.length)
  })

  it('never measures a candidate the driver rules out', async () => {
    const fits = (c: Parameters) => (c.parallel ?? 4) <= 2
    const { d, measured } = driver({ fits })
    const outcome = await coordinateDescent(space, { parallel: 1 }, d, settings)
    expect(measured.length).toBeGreaterThan(0)
    expect(measured.every(fits)).toBe(true)
    expect(measured.every((c) => invalidReason(c) === undefined)).toBe(true)
    expect(outcome.best?.candidate.parallel).toBeLessThanOrEqual(2)
  })

  it('stops when the budget says so, keeping the best so far', async () => {
    const { d, measured } = driver({ budget: 5 })
    const outcome = await coordinateDescent(space, {}, d, settings)
    expect(outcome.stoppedBecause).toBe('budget')
    expect(measured).toHaveLength(5)
    expect(outcome.best).toBeDefined()
  })

  it('stops early after `patience` trials without a real gain', async () => {
    const flat: SearchDriver = { admissible: () => true, measure: async () => 100 }
    const outcome = await coordinateDescent(space, {}, flat, { ...settings, patience: 4 })
    expect(outcome.stoppedBecause).toBe('early-stop')
    expect([...outcome.scores.values()].filter((s) => s !== undefined)).toHaveLength(5)
  })

  it('walks the same path from the same results, so a replayed log continues where it stopped', async () => {
    const first = driver()
    const second = driver()
    await coordinateDescent(space, {}, first.d, settings)
    await coordinateDescent(space, {}, second.d, settings)
    expect(second.measured.map(candidateKey)).toEqual(first.measured.map(candidateKey))
    expect(defaultPatience(space)).toBeGreaterThanOrEqual(4)
  })
})

describe('statistics', () => {
  it('computes medians, percentiles and the speedup spread from quartiles', () => {
    expect(median([3, 1, 2])).toBe(2)
    expect(median([4, 1, 2, 3])).toBe(2.5)
    expect(percentile([1, 2, 3, 4], 99)).toBe(4)
    expect(percentile([1, 2, 3, 4], 25)).toBe(1)
    const base = summarize([10, 10, 10, 10])
    const tuned = summarize([20, 20, 20, 20])
    expect(speedup(base, tuned, true)).toEqual({ median: 2, low: 2, high: 2 })
    // Latency: lower is better, so halving the time is a speedup of 2.
    expect(speedup(tuned, base, false).median).toBe(2)
    const noisy = speedup(summarize([9, 10, 11, 12]), summarize([18, 20, 22, 24]), true)
    expect(noisy.low).toBeLessThan(noisy.median)
    expect(noisy.high).toBeGreaterThan(noisy.median)
  })
})
