import { isAbort } from '../backends/http.js'
import type { BackendClient, EngineTimings } from '../backends/types.js'
import { errorMessage, VeloError, type VeloErrorCode } from '../errors.js'
import { arrivalGapsMs } from './stats.js'
import type { Arrivals, ParamValue } from './types.js'
import type { PlannedRequest } from './workload.js'

/** What happened to one request, times in milliseconds. */
export interface RequestRecord {
  ok: boolean
  error: string | undefined
  /** The error's VeloError code, when it has one. */
  code: VeloErrorCode | undefined
  /** When it was sent, from the level's start. */
  sentMs: number
  ttftMs: number | undefined
  e2eMs: number
  /**
   * Inter-token gaps: the time between successive network reads that brought text, split evenly
   * among the pieces a read brought (several pieces in one read arrived together, not 0 ms apart).
   */
  gapsMs: number[]
  outputTokens: number | undefined
  promptTokens: number | undefined
  engine: EngineTimings | undefined
  finishReason: string | undefined
}

export interface LevelPlan {
  client: BackendClient
  model: string
  concurrency: number
  requests?: number | undefined
  durationMs?: number | undefined
  /** Open loop at this many requests/s (at most `concurrency` in flight); closed loop when absent. */
  rate?: number | undefined
  arrivals: Arrivals
  random: () => number
  next: () => PlannedRequest
  options: Record<string, ParamValue>
  ignoreEos: boolean
  temperature?: number | undefined
  seed?: number | undefined
  signal?: AbortSignal | undefined
  onRecord?: (record: RequestRecord, records: readonly RequestRecord[]) => void
}

export interface LevelRun {
  records: RequestRecord[]
  durationMs: number
  /** Set when the level stopped because going on could not work (server gone, model missing). */
  fatal: VeloError | undefined
}

/** Errors after which the other requests of a run cannot succeed either. */
const FATAL_CODES = new Set<VeloErrorCode>(['VELO_UPSTREAM_UNREACHABLE', 'VELO_MODEL_NOT_FOUND'])

/**
 * Gaps between reads, each split among the pieces that read brought. Pieces that came in the same
 * read as the first one arrived with it: 0 ms each.
 */
export function interTokenGaps(reads: readonly { at: number; pieces: number }[]): number[] {
  const gaps: number[] = new Array<number>(Math.max(0, (reads[0]?.pieces ?? 1) - 1)).fill(0)
  for (let index = 1; index < reads.length; index += 1) {
    const read = reads[index]
    const previous = reads[index - 1]
    if (!read || !previous) continue
    const gap = (read.at - previous.at) / read.pieces
    for (let piece = 0; piece < read.pieces; piece += 1) gaps.push(gap)
  }
  return gaps
}

/** Send one planned request and time it: TTFT, gaps between pieces, end-to-end. */
export async function timeRequest(
  plan: Pick<LevelPlan, 'client' | 'model' | 'options' | 'ignoreEos' | 'temperature' | 'seed'>,
  request: PlannedRequest,
  levelStart: number,
  signal?: AbortSignal,
): Promise<RequestRecord> {
  const sent = performance.now()
  let first: number | undefined
  let pieces = 0
  // Arrival time of each read that brought text, and how many pieces it brought.
  const reads: { at: number; pieces: number }[] = []
  try {
    const stream = plan.client.chatStream(
      {
        model: plan.model,
        messages: request.messages,
        maxTokens: request.maxTokens,
        ignoreEos: plan.ignoreEos,
        temperature: plan.temperature,
        seed: plan.seed,
        options: plan.options,
      },
      signal,
    )
    for await (const event of stream) {
      if (event.type === 'token') {
        if (first === undefined) first = event.at
        const read = reads[reads.length - 1]
        if (read !== undefined && read.at === event.at) read.pieces += 1
        else reads.push({ at: event.at, pieces: 1 })
        pieces += 1
        continue
      }
      return {
        ok: true,
        error: undefined,
        code: undefined,
        sentMs: sent - levelStart,
        ttftMs: first === undefined ? undefined : first - sent,
        e2eMs: event.at - sent,
        gapsMs: interTokenGaps(reads),
        outputTokens: event.usage.completionTokens ?? event.timings?.generatedTokens ?? pieces,
        promptTokens: event.usage.promptTokens ?? event.timings?.promptTokens,
        engine: event.timings,
        finishReason: event.finishReason,
      }
    }
    throw new VeloError('VELO_UPSTREAM_ERROR', `${plan.client.baseUrl} ended a stream without a result`)
  } catch (error) {
    if (isAbort(error)) throw error
    return {
      ok: false,
      error: errorMessage(error),
      code: error instanceof VeloError ? error.code : undefined,
      sentMs: sent - levelStart,
      ttftMs: undefined,
      e2eMs: performance.now() - sent,
      gapsMs: interTokenGaps(reads),
      outputTokens: undefined,
      promptTokens: undefined,
      engine: undefined,
      finishReason: undefined,
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (ms <= 0 || signal.aborted) {
      resolve()
      return
    }
    const timer = setTimeout(done, ms)
    function done(): void {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    signal.addEventListener('abort', done, { once: true })
  })
}

/**
 * Run one load level: `requests` requests (or as many as fit in `durationMs`), either keeping
 * `concurrency` in flight (closed loop) or sending at `rate` per second with Poisson or constant
 * gaps (open loop; an arrival waits while `concurrency` requests are in flight). It stops early,
 * with `fatal` set, when the server is gone, the model is missing, or every one of the first
 * requests failed.
 */
export async function runLevel(plan: LevelPlan): Promise<LevelRun> {
  const records: RequestRecord[] = []
  const controller = new AbortController()
  const abortOuter = () => controller.abort(plan.signal?.reason)
  plan.signal?.addEventListener('abort', abortOuter, { once: true })
  const signal = controller.signal
  const start = performance.now()
  const deadline = plan.durationMs === undefined ? Number.POSITIVE_INFINITY : start + plan.durationMs
  const limit = plan.requests ?? (plan.durationMs === undefined ? 1 : Number.POSITIVE_INFINITY)
  const giveUpAfter = Math.max(3, plan.concurrency)
  let issued = 0
  let fatal: VeloError | undefined
  let lastEnd = start

  const canIssue = () =>
    fatal === undefined && !signal.aborted && issued < limit && performance.now() < deadline

  const record = (result: RequestRecord) => {
    records.push(result)
    lastEnd = Math.max(lastEnd, start + result.sentMs + result.e2eMs)
    if (!result.ok && fatal === undefined) {
      const failedSoFar = records.every((entry) => !entry.ok)
      if (result.code !== undefined && FATAL_CODES.has(result.code)) {
        fatal = new VeloError(result.code, result.error ?? 'request failed')
      } else if (failedSoFar && records.length >= giveUpAfter) {
        fatal = new VeloError(
          'VELO_UPSTREAM_ERROR',
          `the first ${records.length} requests failed: ${result.error}`,
          {
            suggestion: 'check the server log; the request is rejected every time',
          },
        )
      }
      if (fatal) controller.abort(fatal)
    }
    plan.onRecord?.(result, records)
  }

  const one = async () => {
    issued += 1
    const request = plan.next()
    try {
      record(await timeRequest(plan, request, start, signal))
    } catch (error) {
      // Aborted because the run is stopping: this request is not counted.
      if (!isAbort(error)) throw error
    }
  }

  try {
    if (plan.rate === undefined) {
      const worker = async () => {
        while (canIssue()) await one()
      }
      await Promise.all(Array.from({ length: plan.concurrency }, worker))
    } else {
      const gap = arrivalGapsMs(plan.rate, plan.arrivals, plan.random)
      const inFlight = new Set<Promise<void>>()
      let nextAt = start
      while (canIssue()) {
        // Timers may fire a fraction of a millisecond early: wait until the arrival time has passed.
        while (!signal.aborted && performance.now() < nextAt) {
          await sleep(Math.ceil(nextAt - performance.now()), signal)
        }
        while (inFlight.size >= plan.concurrency) await Promise.race(inFlight)
        if (!canIssue()) break
        const running: Promise<void> = one().finally(() => inFlight.delete(running))
        inFlight.add(running)
        nextAt += gap()
      }
      await Promise.all(inFlight)
    }
  } finally {
    plan.signal?.removeEventListener('abort', abortOuter)
  }
  if (fatal === undefined && plan.signal?.aborted) {
    fatal = new VeloError('VELO_INTERNAL', 'the run was interrupted')
  }
  return { records, durationMs: Math.max(0, lastEnd - start), fatal }
}
