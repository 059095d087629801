import { createParser, type EventSourceMessage } from 'eventsource-parser'
import { VeloError } from '../errors.js'
import { type HttpOptions, HttpTarget, httpError } from './http.js'
import type {
  BackendClient,
  BackendKind,
  BackendModel,
  ChatStreamRequest,
  EndEvent,
  EngineTimings,
  StreamEvent,
  StreamUsage,
} from './types.js'

interface ModelList {
  data?: {
    id: string
    meta?: { size?: number; n_params?: number }
  }[]
}

interface ChatChunk {
  choices?: {
    delta?: { content?: string | null; reasoning_content?: string | null }
    finish_reason?: string | null
  }[]
  usage?: { prompt_tokens?: number; completion_tokens?: number } | null
  /** llama-server's own measurement, on the last chunk. */
  timings?: {
    cache_n?: number
    prompt_n?: number
    prompt_ms?: number
    predicted_n?: number
    predicted_ms?: number
  }
  error?: unknown
}

/**
 * Any OpenAI-compatible server through `/v1/chat/completions` with SSE streaming. llama-server
 * adds `ignore_eos`, engine `timings` and a tokenizer; velo adds its status endpoint.
 */
export class OpenAIClient implements BackendClient {
  readonly api = 'openai' as const
  readonly kind: BackendKind
  readonly baseUrl: string
  protected readonly http: HttpTarget

  constructor(baseUrl: string, options: HttpOptions & { kind?: BackendKind } = {}) {
    this.kind = options.kind ?? 'openai'
    // Ask velo not to answer a benchmark from its response cache.
    const headers =
      this.kind === 'velo' ? { 'cache-control': 'no-store', ...options.headers } : options.headers
    this.http = new HttpTarget(baseUrl, { ...options, headers })
    this.baseUrl = this.http.baseUrl
  }

  async listModels(): Promise<BackendModel[]> {
    const list = await this.http.json<ModelList>('/v1/models')
    return (list.data ?? []).map((model) => ({
      id: model.id,
      sizeBytes: model.meta?.size,
      digest: undefined,
      parameterCount: model.meta?.n_params,
    }))
  }

  async version(): Promise<string | undefined> {
    if (this.kind === 'llama-server') {
      const props = await this.http.json<{ build_info?: string }>('/props').catch(() => undefined)
      return props?.build_info
    }
    if (this.kind === 'velo') {
      const status = await this.http.json<{ version?: string }>('/velo/status').catch(() => undefined)
      return status?.version
    }
    return undefined
  }

  async *chatStream(request: ChatStreamRequest, signal?: AbortSignal): AsyncGenerator<StreamEvent> {
    const body: Record<string, unknown> = {
      ...request.options,
      model: request.model,
      messages: request.messages,
      stream: true,
      stream_options: { include_usage: true },
    }
    if (request.maxTokens !== undefined) body['max_tokens'] = request.maxTokens
    if (request.temperature !== undefined) body['temperature'] = request.temperature
    if (request.seed !== undefined) body['seed'] = request.seed
    if (request.ignoreEos && this.kind === 'llama-server') body['ignore_eos'] = true
    const path = '/v1/chat/completions'
    const response = await this.http.send(path, { body, signal })
    if (response.statusCode >= 400) {
      throw httpError(this.baseUrl, path, response.statusCode, await response.body.text())
    }
    const pending: EventSourceMessage[] = []
    const parser = createParser({ onEvent: (event) => pending.push(event) })
    const decoder = new TextDecoder()
    const usage: StreamUsage = { promptTokens: undefined, completionTokens: undefined }
    let timings: EngineTimings | undefined
    let finishReason: string | undefined
    let end: EndEvent | undefined
    let tokens = 0
    try {
      for await (const chunk of response.body) {
        // After [DONE], read the body to its end: leaving it early would close the connection
        // instead of returning it to the pool, and the next request would pay for a new one.
        if (end) continue
        parser.feed(typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true }))
        const at = performance.now()
        for (const event of pending.splice(0)) {
          if (event.data === '[DONE]') {
            end = { type: 'end', at, usage, timings, finishReason }
            break
          }
          const data = parseChunk(event.data, this.baseUrl)
          const choice = data.choices?.[0]
          const text = (choice?.delta?.reasoning_content ?? '') + (choice?.delta?.content ?? '')
          if (text) {
            tokens++
            yield { type: 'token', text, at }
          }
          if (choice?.finish_reason) finishReason = choice.finish_reason
          if (data.usage) {
            usage.promptTokens = data.usage.prompt_tokens
            usage.completionTokens = data.usage.completion_tokens
          }
          if (data.timings) timings = llamaTimings(data.timings)
        }
      }
    } catch (error) {
      // The connection dropped after [DONE]: the answer was whole, only the connection is lost.
      if (!end) throw this.http.wrapMidStream(error, path, `${tokens} streamed chunks`)
    }
    if (end) {
      yield end
      return
    }
    // Some servers close without `[DONE]`; a finish reason still means the answer is complete.
    if (finishReason !== undefined) {
      yield { type: 'end', at: performance.now(), usage, timings, finishReason }
      return
    }
    throw new VeloError('VELO_UPSTREAM_ERROR', `${this.baseUrl}${path} ended the stream before it was done`)
  }

  close(): Promise<void> {
    return this.http.close()
  }
}

function parseChunk(data: string, baseUrl: string): ChatChunk {
  let parsed: ChatChunk
  try {
    parsed = JSON.parse(data) as ChatChunk
  } catch {
    throw new VeloError('VELO_UPSTREAM_ERROR', `${baseUrl} sent a stream event that is not JSON`)
  }
  if (parsed.error !== undefined) {
    const message =
      typeof parsed.error === 'string'
        ? parsed.error
        : String((parsed.error as { message?: unknown }).message ?? JSON.stringify(parsed.error))
    throw new VeloError('VELO_UPSTREAM_ERROR', `${baseUrl} failed mid-stream: ${message}`)
  }
  return parsed
}

function llamaTimings(timings: NonNullable<ChatChunk['timings']>): EngineTimings {
  return {
    promptTokens: timings.prompt_n,
    promptMs: timings.prompt_ms,
    generatedTokens: timings.predicted_n,
    generationMs: timings.predicted_ms,
    cachedTokens: timings.cache_n,
  }
}
