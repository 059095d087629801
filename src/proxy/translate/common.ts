/** Small pieces both translation directions share. */
import { jsonrepair } from 'jsonrepair'
import { VeloError } from '../../core/errors.js'
import type {
  LlamaServerTimings,
  OllamaDoneReason,
  OllamaMetrics,
  OpenAIFinishReason,
  OpenAIUsage,
  TokenLogprob,
  TranslateContext,
} from './types.js'

export function badRequest(field: string, message: string): VeloError {
  return new VeloError('VELO_BAD_REQUEST', `${field}: ${message}`, { status: 400 })
}

export function stopList(stop: string | string[] | null | undefined): string[] | undefined {
  if (stop === null || stop === undefined) return undefined
  return typeof stop === 'string' ? [stop] : stop
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/**
 * Arguments of a tool call a client sent back in its history. OpenAI carries them as a JSON
 * string, Ollama as an object; a string that is not a JSON object is the client's error.
 */
export function requestToolArguments(
  args: string | null | undefined,
  field: string,
): Record<string, unknown> {
  if (args === null || args === undefined || args.trim() === '') return {}
  let parsed: unknown
  try {
    parsed = JSON.parse(args)
  } catch {
    throw badRequest(field, `expected a JSON object in a string, got ${JSON.stringify(args.slice(0, 40))}`)
  }
  if (!isRecord(parsed)) throw badRequest(field, 'expected a JSON object in a string')
  return parsed
}

/**
 * Arguments a model produced (in an upstream response). Small models write almost-JSON, so a
 * failed parse gets one repair attempt (jsonrepair: missing quotes, trailing commas, cut-off
 * objects); what still is not an object becomes `{}` rather than failing the whole response.
 */
export function responseToolArguments(args: string | null | undefined): Record<string, unknown> {
  if (args === null || args === undefined || args === '') return {}
  try {
    const parsed: unknown = JSON.parse(args)
    if (isRecord(parsed)) return parsed
  } catch {
    try {
      const repaired: unknown = JSON.parse(jsonrepair(args))
      if (isRecord(repaired)) return repaired
    } catch {
      // Not JSON even after repair: fall through to no arguments.
    }
  }
  return {}
}

/** Ollama's done_reason -> OpenAI's finish_reason (tool calls are decided by the caller). */
export function finishReasonFromDone(doneReason: OllamaDoneReason | undefined): OpenAIFinishReason {
  return doneReason === 'length' ? 'length' : 'stop'
}

/** OpenAI's finish_reason -> Ollama's done_reason; Ollama says "stop" after tool calls too. */
export function doneReasonFromFinish(finishReason: OpenAIFinishReason | null | undefined): OllamaDoneReason {
  return finishReason === 'length' ? 'length' : 'stop'
}

export function usageFromOllama(metrics: OllamaMetrics): OpenAIUsage {
  const prompt = metrics.prompt_eval_count ?? 0
  const completion = metrics.eval_count ?? 0
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion }
}

const NS_PER_MS = 1e6

/** The context's clock, else performance.now (called on performance: it needs its `this`). */
export function clockNow(ctx: Pick<TranslateContext, 'now'>): number {
  return ctx.now ? ctx.now() : performance.now()
}

/** Nanoseconds since the request arrived. */
export function elapsedNs(ctx: Pick<TranslateContext, 'startedAt' | 'now'>): number {
  return Math.max(0, Math.round((clockNow(ctx) - ctx.startedAt) * NS_PER_MS))
}

/**
 * Ollama's counts and durations (ns) from an OpenAI upstream's usage and llama-server timings.
 * Without timings, the durations come from wall time: the prompt phase ends at the first token
 * (when a stream saw one), the rest is generation.
 */
export function ollamaMetrics(
  usage: OpenAIUsage | null | undefined,
  timings: LlamaServerTimings | undefined,
  ctx: Pick<TranslateContext, 'startedAt' | 'now'>,
  firstTokenAt?: number,
): Required<OllamaMetrics> {
  const total = elapsedNs(ctx)
  const promptCount =
    usage?.prompt_tokens ?? (timings?.prompt_n !== undefined ? timings.prompt_n + (timings.cache_n ?? 0) : 0)
  const evalCount = usage?.completion_tokens ?? timings?.predicted_n ?? 0
  let promptDuration: number
  let evalDuration: number
  if (timings?.prompt_ms !== undefined && timings.predicted_ms !== undefined) {
    promptDuration = Math.round(timings.prompt_ms * NS_PER_MS)
    evalDuration = Math.round(timings.predicted_ms * NS_PER_MS)
  } else if (firstTokenAt !== undefined) {
    promptDuration = Math.max(0, Math.round((firstTokenAt - ctx.startedAt) * NS_PER_MS))
    evalDuration = Math.max(0, total - promptDuration)
  } else {
    promptDuration = 0
    evalDuration = total
  }
  // Whatever the engine did not account for (queueing, HTTP, model load) is load time to Ollama.
  const load = Math.max(0, total - promptDuration - evalDuration)
  return {
    total_duration: total,
    load_duration: load,
    prompt_eval_count: promptCount,
    prompt_eval_duration: promptDuration,
    eval_count: evalCount,
    eval_duration: evalDuration,
  }
}

/** Best guess of an image's media type from its base64 magic, for data URLs. */
export function imageMediaType(base64: string): string {
  if (base64.startsWith('/9j/')) return 'image/jpeg'
  if (base64.startsWith('iVBOR')) return 'image/png'
  if (base64.startsWith('R0lGOD')) return 'image/gif'
  if (base64.startsWith('UklGR')) return 'image/webp'
  return 'image/png'
}

/** The base64 payload of a `data:` URL; undefined for anything else (a remote URL). */
export function dataUrlPayload(url: string): string | undefined {
  if (!url.startsWith('data:')) return undefined
  const comma = url.indexOf(',')
  if (comma < 0 || !url.slice(0, comma).endsWith(';base64')) return undefined
  return url.slice(comma + 1)
}

/** A new Ollama `created_at`; the string is reused within the same millisecond. */
let lastStampMs = -1
let lastStamp = ''
export function ollamaTimestamp(): string {
  const ms = Date.now()
  if (ms !== lastStampMs) {
    lastStampMs = ms
    lastStamp = new Date(ms).toISOString()
  }
  return lastStamp
}

export function toolCallId(ctx: Pick<TranslateContext, 'id'>, index: number): string {
  return `call_${ctx.id.replace(/^(chatcmpl|cmpl)-/, '')}_${index}`
}

/** OpenAI's legacy text-completion logprobs shape from per-token entries (Ollama's shape). */
export function completionLogprobs(entries: TokenLogprob[]): {
  tokens: string[]
  token_logprobs: number[]
  top_logprobs: Array<Record<string, number>>
} {
  return {
    tokens: entries.map((entry) => entry.token),
    token_logprobs: entries.map((entry) => entry.logprob),
    top_logprobs: entries.map((entry) =>
      Object.fromEntries((entry.top_logprobs ?? []).map((top) => [top.token, top.logprob])),
    ),
  }
}

/** Ollama's per-token logprobs from OpenAI's (the same shape, without llama-server's token ids). */
export function ollamaLogprobs(entries: TokenLogprob[]): TokenLogprob[] {
  return entries.map((entry) => {
    const out: TokenLogprob = { token: entry.token, logprob: entry.logprob }
    if (entry.bytes) out.bytes = entry.bytes
    if (entry.top_logprobs) out.top_logprobs = ollamaLogprobs(entry.top_logprobs)
    return out
  })
}
