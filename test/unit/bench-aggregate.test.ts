import { describe, expect, it } from 'vitest'
import {
  aggregateRow,
  decodeEfficiency,
  meetsSlo,
  timePerOutputToken,
} from '../../src/core/bench/aggregate.js'
import { record, run } from './bench-fixtures.js'

const context = {
  model: 'm',
  params: {},
  concurrency: 2,
  rate: undefined,
  slo: undefined,
  modelBytes: undefined,
  bandwidthBytesPerSec: undefined,
  partial: false,
}

describe('bench row aggregation', () => {
  it('computes client figures from known requests', () => {
    const records = [
      record({ ttftMs: 100, e2eMs: 1000, outputTokens: 10, promptTokens: 50, gapsMs: [100, 100] }),
      record({ ttftMs: 300, e2eMs: 1200, outputTokens: 10, promptTokens: 50, gapsMs: [100, 100] }),
      record({
        ok: false,
        error: 'boom',
        ttftMs: undefined,
        outputTokens: undefined,
        promptTokens: undefined,
        engine: undefined,
      }),
    ]
    const row = aggregateRow([run(records, 2000)], context)
    expect(row.requests).toEqual({ total: 3, completed: 2, failed: 1 })
    expect(row.durationSec).toBe(2)
    expect(row.client.requestsPerSec).toBe(1)
    expect(row.client.outputTokensPerSec).toBe(10)
    expect(row.client.totalTokensPerSec).toBe(60)
    expect(row.client.ttftMs).toMatchObject({ count: 2, mean: 200, median: 200, min: 100, max: 300 })
    expect(row.client.e2eMs?.median).toBe(1100)
    expect(row.client.itlMs).toMatchObject({ count: 4, median: 100, stddev: 0 })
    // (1000 - 100) / 9 and (1200 - 300) / 9
    expect(row.client.tpotMs?.median).toBe(100)
    expect(row.errors).toEqual([{ message: 'boom', count: 1 }])
    expect(row.tokens.output?.mean).toBe(10)
  })

  it('keeps engine-reported rates apart from client figures', () => {
    const row = aggregateRow(
      [
        run(
          [
            record({
              engine: {
                promptTokens: 100,
                promptMs: 20,
                generatedTokens: 64,
                generationMs: 800,
                cachedTokens: 3,
              },
            }),
          ],
          1000,
        ),
      ],
      context,
    )
    expect(row.engine.promptTokensPerSec?.median).toBe(5000)
    expect(row.engine.generationTokensPerSec?.median).toBe(80)
    expect(row.tokens.cachedPrompt?.median).toBe(3)
  })

  it('pools repetitions and keeps each one’s figures for the noise', () => {
    const row = aggregateRow([run([record(), record()], 1000), run([record(), record()], 2000)], context)
    expect(row.repetitions).toBe(2)
    expect(row.requests.completed).toBe(4)
    expect(row.client.requestsPerSec).toBeCloseTo(4 / 3)
    expect(row.perRepetition.map((figures) => figures.requestsPerSec)).toEqual([2, 1])
    expect(row.perRepetition[0]?.outputTokensPerSec).toBe(20)
  })

  it('counts goodput against every limit of the SLO', () => {
    const slo = { ttftMs: 200, itlMs: 120 }
    expect(meetsSlo(record({ ttftMs: 150, e2eMs: 1000, outputTokens: 10 }), slo)).toBe(true)
    expect(meetsSlo(record({ ttftMs: 250 }), slo)).toBe(false)
    // (2000 - 100) / 9 = 211 ms per token: too slow
    expect(meetsSlo(record({ ttftMs: 100, e2eMs: 2000, outputTokens: 10 }), slo)).toBe(false)
    expect(meetsSlo(record({ ok: false }), slo)).toBe(false)
    const row = aggregateRow(
      [
        run(
          [
            record({ ttftMs: 150 }),
            record({ ttftMs: 250 }),
            record({ ttftMs: 100 }),
            record({ ttftMs: 900 }),
          ],
          2000,
        ),
      ],
      { ...context, slo },
    )
    expect(row.goodput).toEqual({ requests: 2, fraction: 0.5, requestsPerSec: 1 })
  })

  it('measures decode efficiency against the bandwidth bound', () => {
    expect(timePerOutputToken(record({ ttftMs: 100, e2eMs: 1000, outputTokens: 10 }))).toBe(100)
    expect(timePerOutputToken(record({ outputTokens: 1 }))).toBeUndefined()
    // 1 GB of weights at 20 GB/s: at most 20 tokens/s per stream.
    const engine = { count: 1, mean: 10, median: 10, p90: 10, p99: 10, stddev: 0, min: 10, max: 10 }
    expect(decodeEfficiency(engine, undefined, 1e9, 20e9)).toEqual({
      boundTokensPerSec: 20,
      efficiency: 0.5,
      basis: 'engine',
    })
    const tpot = { ...engine, median: 100 }
    expect(decodeEfficiency(undefined, tpot, 1e9, 20e9)).toEqual({
      boundTokensPerSec: 20,
      efficiency: 0.5,
      basis: 'client',
    })
    expect(decodeEfficiency(engine, undefined, undefined, 20e9)).toBeUndefined()
  })
})
