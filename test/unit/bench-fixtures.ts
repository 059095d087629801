import { aggregateRow } from '../../src/core/bench/aggregate.js'
import type { LevelRun, RequestRecord } from '../../src/core/bench/load.js'
import { BENCH_SCHEMA, type BenchReport, type BenchRow } from '../../src/core/bench/types.js'

/** A completed request with the given timings (ms) and token counts. */
export function record(overrides: Partial<RequestRecord> = {}): RequestRecord {
  return {
    ok: true,
    error: undefined,
    code: undefined,
    sentMs: 0,
    ttftMs: 100,
    e2eMs: 1000,
    gapsMs: [10, 10, 10],
    outputTokens: 10,
    promptTokens: 50,
    engine: { promptTokens: 50, promptMs: 50, generatedTokens: 10, generationMs: 500, cachedTokens: 0 },
    finishReason: 'length',
    ...overrides,
  }
}

export function run(records: RequestRecord[], durationMs: number): LevelRun {
  return { records, durationMs, fatal: undefined }
}

/** A row whose repetitions ran at the given output tokens/s (10 tokens per request, 1 s each). */
export function rowAt(model: string, concurrency: number, repetitionSeconds: number[]): BenchRow {
  return aggregateRow(
    repetitionSeconds.map((seconds) => run([record({ e2eMs: seconds * 1000 })], seconds * 1000)),
    {
      model,
      params: {},
      concurrency,
      rate: undefined,
      slo: undefined,
      modelBytes: undefined,
      bandwidthBytesPerSec: undefined,
      partial: false,
    },
  )
}

export function report(rows: BenchRow[]): BenchReport {
  return {
    schema: BENCH_SCHEMA,
    velo: { version: '0.0.0-test' },
    startedAt: '2026-01-01T00:00:00.000Z',
    finishedAt: '2026-01-01T00:01:00.000Z',
    target: {
      url: 'http://127.0.0.1:1',
      kind: 'llama-server',
      api: 'openai',
      version: 'b1',
      managed: undefined,
    },
    environment: {
      hardware: {
        cpuModel: 'Test CPU',
        cpuCores: 2,
        memoryBytes: 8 * 1024 ** 3,
        os: 'linux',
        arch: 'x64',
        fingerprint: 'abc',
      },
      models: [],
    },
    settings: {
      concurrency: [...new Set(rows.map((row) => row.concurrency))],
      requests: 1,
      durationMs: undefined,
      rate: undefined,
      arrivals: 'poisson',
      promptTokens: 50,
      genTokens: 10,
      warmup: 0,
      repetitions: 3,
      dataset: undefined,
      sharedPrefixTokens: undefined,
      sweep: [],
      slo: undefined,
      seed: 1,
      ignoreEos: true,
    },
    bandwidth: undefined,
    rows,
    micro: [],
    comparison: undefined,
    aborted: undefined,
  }
}
