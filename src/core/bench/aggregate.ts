import type { LevelRun, RequestRecord } from './load.js'
import { median, summarize } from './stats.js'
import type { BenchRow, ErrorCount, ParamValue, RepetitionFigures, Slo, Summary } from './types.js'

const MAX_SAMPLES = 5000

/** (end-to-end - TTFT) / (tokens - 1): the request's mean time per output token after the first. */
export function timePerOutputToken(record: RequestRecord): number | undefined {
  if (record.ttftMs === undefined || record.outputTokens === undefined || record.outputTokens < 2)
    return undefined
  return (record.e2eMs - record.ttftMs) / (record.outputTokens - 1)
}

function rate(tokens: number | undefined, ms: number | undefined): number | undefined {
  if (tokens === undefined || ms === undefined || tokens <= 0 || ms <= 0) return undefined
  return (tokens / ms) * 1000
}

export function enginePromptRate(record: RequestRecord): number | undefined {
  return rate(record.engine?.promptTokens, record.engine?.promptMs)
}

export function engineGenerationRate(record: RequestRecord): number | undefined {
  return rate(record.engine?.generatedTokens, record.engine?.generationMs)
}

/** Whether a completed request met every limit of the SLO. */
export function meetsSlo(record: RequestRecord, slo: Slo): boolean {
  if (!record.ok) return false
  if (slo.ttftMs !== undefined && (record.ttftMs === undefined || record.ttftMs > slo.ttftMs)) return false
  if (slo.e2eMs !== undefined && record.e2eMs > slo.e2eMs) return false
  if (slo.itlMs !== undefined) {
    const tpot = timePerOutputToken(record)
    if (tpot !== undefined && tpot > slo.itlMs) return false
  }
  return true
}

function defined(values: (number | undefined)[]): number[] {
  return values.filter((value): value is number => value !== undefined && Number.isFinite(value))
}

function sum(values: number[]): number {
  return values.reduce((total, value) => total + value, 0)
}

function groupErrors(records: RequestRecord[]): ErrorCount[] {
  const counts = new Map<string, number>()
  for (const record of records) {
    if (!record.ok)
      counts.set(record.error ?? 'unknown error', (counts.get(record.error ?? 'unknown error') ?? 0) + 1)
  }
  return [...counts.entries()]
    .map(([message, count]) => ({ message, count }))
    .sort((a, b) => b.count - a.count)
}

function throughputs(records: RequestRecord[], durationMs: number) {
  const done = records.filter((record) => record.ok)
  const seconds = durationMs / 1000
  const output = sum(defined(done.map((record) => record.outputTokens)))
  const prompt = sum(defined(done.map((record) => record.promptTokens)))
  return {
    requestsPerSec: seconds > 0 ? done.length / seconds : 0,
    outputTokensPerSec: seconds > 0 ? output / seconds : 0,
    totalTokensPerSec: seconds > 0 ? (output + prompt) / seconds : 0,
  }
}

function medianOf(values: number[]): number | undefined {
  return values.length === 0 ? undefined : median(values)
}

export function repetitionFigures(run: LevelRun, slo: Slo | undefined): RepetitionFigures {
  const done = run.records.filter((record) => record.ok)
  const seconds = run.durationMs / 1000
  return {
    ...throughputs(run.records, run.durationMs),
    ttftMedianMs: medianOf(defined(done.map((record) => record.ttftMs))),
    itlMedianMs: medianOf(done.flatMap((record) => record.gapsMs)),
    tpotMedianMs: medianOf(defined(done.map(timePerOutputToken))),
    e2eMedianMs: medianOf(done.map((record) => record.e2eMs)),
    engineGenerationTokensPerSec: medianOf(defined(done.map(engineGenerationRate))),
    enginePromptTokensPerSec: medianOf(defined(done.map(enginePromptRate))),
    goodputPerSec:
      slo === undefined || seconds <= 0
        ? undefined
        : run.records.filter((record) => meetsSlo(record, slo)).length / seconds,
  }
}

export interface RowContext {
  model: string
  params: Record<string, ParamValue>
  concurrency: number
  rate: number | undefined
  slo: Slo | undefined
  /** Weight bytes and memory bandwidth, for decode efficiency. */
  modelBytes: number | undefined
  bandwidthBytesPerSec: number | undefined
  partial: boolean
}

function capped(values: number[]): number[] {
  if (values.length <= MAX_SAMPLES) return values
  const step = values.length / MAX_SAMPLES
  return Array.from({ length: MAX_SAMPLES }, (_, index) => values[Math.floor(index * step)] ?? 0)
}

/** Pool the repetitions of one level into a report row. */
export function aggregateRow(runs: LevelRun[], context: RowContext): BenchRow {
  const records = runs.flatMap((run) => run.records)
  const done = records.filter((record) => record.ok)
  const durationMs = sum(runs.map((run) => run.durationMs))
  const ttft = defined(done.map((record) => record.ttftMs))
  const e2e = done.map((record) => record.e2eMs)
  const engineGeneration = summarize(defined(done.map(engineGenerationRate)))
  const tpot = summarize(defined(done.map(timePerOutputToken)))
  let goodput: BenchRow['goodput']
  if (context.slo !== undefined) {
    const good = records.filter((record) => context.slo !== undefined && meetsSlo(record, context.slo)).length
    goodput = {
      requests: good,
      fraction: records.length > 0 ? good / records.length : 0,
      requestsPerSec: durationMs > 0 ? good / (durationMs / 1000) : 0,
    }
  }
  return {
    model: context.model,
    params: context.params,
    concurrency: context.concurrency,
    rate: context.rate,
    repetitions: runs.length,
    partial: context.partial,
    requests: { total: records.length, completed: done.length, failed: records.length - done.length },
    durationSec: durationMs / 1000,
    client: {
      ttftMs: summarize(ttft),
      itlMs: summarize(done.flatMap((record) => record.gapsMs)),
      tpotMs: tpot,
      e2eMs: summarize(e2e),
      ...throughputs(records, durationMs),
    },
    engine: {
      promptTokensPerSec: summarize(defined(done.map(enginePromptRate))),
      generationTokensPerSec: engineGeneration,
    },
    tokens: {
      prompt: summarize(defined(done.map((record) => record.promptTokens))),
      output: summarize(defined(done.map((record) => record.outputTokens))),
      cachedPrompt: summarize(defined(done.map((record) => record.engine?.cachedTokens))),
    },
    goodput,
    decode: decodeEfficiency(engineGeneration, tpot, context.modelBytes, context.bandwidthBytesPerSec),
    errors: groupErrors(records),
    perRepetition: runs.map((run) => repetitionFigures(run, context.slo)),
    samples: { ttftMs: capped(ttft), e2eMs: capped(e2e) },
  }
}

/**
 * Each decode step reads all weights once, so one stream can produce at most bandwidth / weight
 * bytes tokens per second. Efficiency is the per-stream decode rate against that bound: the engine's
 * own rate when it reports one, else the client's 1000 / TPOT.
 */
export function decodeEfficiency(
  engineGeneration: Summary | undefined,
  tpot: Summary | undefined,
  modelBytes: number | undefined,
  bandwidthBytesPerSec: number | undefined,
): BenchRow['decode'] {
  if (!modelBytes || !bandwidthBytesPerSec) return undefined
  const boundTokensPerSec = bandwidthBytesPerSec / modelBytes
  if (engineGeneration !== undefined) {
    return { boundTokensPerSec, efficiency: engineGeneration.median / boundTokensPerSec, basis: 'engine' }
  }
  if (tpot !== undefined && tpot.median > 0) {
    return { boundTokensPerSec, efficiency: 1000 / tpot.median / boundTokensPerSec, basis: 'client' }
  }
  return undefined
}
