import { VeloError } from '../errors.js'
import { type HttpOptions, HttpTarget, httpError, lines } from './http.js'
import type {
  BackendClient,
  BackendKind,
  BackendModel,
  ChatStreamRequest,
  EndEvent,
  EngineTimings,
  StreamEvent,
} from './types.js'

interface OllamaTags {
  models?: {
    name: string
    size?: number
    digest?: string
    details?: { parameter_size?: string }
  }[]
}

interface OllamaChatLine {
  message?: { content?: string; thinking?: string }
  done?: boolean
  done_reason?: string
  prompt_eval_count?: number
  prompt_eval_duration?: number
  eval_count?: number
  eval_duration?: number
  error?: string
}

/** `19.55M`, `7.6B` -> a parameter count. */
export function parseParameterSize(text: string | undefined): number | undefined {
  const match = /^([\d.]+)\s*([KMBT]?)$/i.exec(text?.trim() ?? '')
  if (!match) return undefined
  const scale: Record<string, number> = { '': 1, K: 1e3, M: 1e6, B: 1e9, T: 1e12 }
  return Math.round(Number(match[1]) * (scale[(match[2] ?? '').toUpperCase()] ?? 1))
}

/** Ollama's own API: `/api/chat` streamed as NDJSON, durations in nanoseconds. */
export class OllamaClient implements BackendClient {
  readonly api = 'ollama' as const
  readonly kind: BackendKind
  readonly baseUrl: string
  private readonly http: HttpTarget

  /** `kind` is `velo` when this is velo's Ollama-compatible surface rather than Ollama itself. */
  constructor(baseUrl: string, options: HttpOptions & { kind?: BackendKind } = {}) {
    this.http = new HttpTarget(baseUrl, options)
    this.baseUrl = this.http.baseUrl
    this.kind = options.kind ?? 'ollama'
  }

  async listModels(): Promise<BackendModel[]> {
    const tags = await this.http.json<OllamaTags>('/api/tags')
    return (tags.models ?? []).map((model) => ({
      id: model.name,
      sizeBytes: model.size,
      digest: model.digest,
      parameterCount: parseParameterSize(model.details?.parameter_size),
    }))
  }

  async version(): Promise<string | undefined> {
    const body = await this.http.json<{ version?: string }>('/api/version').catch(() => undefined)
    return body?.version
  }

  async *chatStream(request: ChatStreamRequest, signal?: AbortSignal): AsyncGenerator<StreamEvent> {
    const options: Record<string, string | number | boolean> = { ...request.options }
    if (request.maxTokens !== undefined) options['num_predict'] = request.maxTokens
    if (request.temperature !== undefined) options['temperature'] = request.temperature
    if (request.seed !== undefined) options['seed'] = request.seed
    const response = await this.http.send('/api/chat', {
      body: { model: request.model, messages: request.messages, stream: true, options },
      signal,
    })
    if (response.statusCode >= 400) {
      throw httpError(this.baseUrl, '/api/chat', response.statusCode, await response.body.text())
    }
    let end: EndEvent | undefined
    let received = 0
    try {
      for await (const line of lines(response.body)) {
        // Read to the end after the last line, so the connection goes back to the pool.
        if (end) continue
        received++
        const at = performance.now()
        let chunk: OllamaChatLine
        try {
          chunk = JSON.parse(line) as OllamaChatLine
        } catch {
          throw new VeloError('VELO_UPSTREAM_ERROR', `${this.baseUrl}/api/chat sent a line that is not JSON`)
        }
        if (chunk.error) {
          throw new VeloError(
            'VELO_UPSTREAM_ERROR',
            `${this.baseUrl}/api/chat failed mid-stream: ${chunk.error}`,
          )
        }
        const text = (chunk.message?.thinking ?? '') + (chunk.message?.content ?? '')
        if (text) yield { type: 'token', text, at }
        if (chunk.done) {
          end = {
            type: 'end',
            at,
            usage: { promptTokens: chunk.prompt_eval_count, completionTokens: chunk.eval_count },
            timings: ollamaTimings(chunk),
            finishReason: chunk.done_reason,
          }
        }
      }
    } catch (error) {
      // The connection dropped after the done line: the answer was whole, only the connection is lost.
      if (!end) throw this.http.wrapMidStream(error, '/api/chat', `${received} lines`)
    }
    if (end) {
      yield end
      return
    }
    // Ollama ends a stream this way when its guard against loops stops a prediction (the same token
    // more than 30 times in a row): greedy decoding of a small model gets there.
    throw new VeloError(
      'VELO_UPSTREAM_ERROR',
      `${this.baseUrl}/api/chat ended the stream before it was done (Ollama stops a model that repeats one token over 30 times)`,
      { suggestion: 'sample with a temperature above 0 (bench --temperature), or ask for fewer tokens' },
    )
  }

  close(): Promise<void> {
    return this.http.close()
  }
}

function ollamaTimings(chunk: OllamaChatLine): EngineTimings {
  const ms = (ns: number | undefined) => (ns === undefined ? undefined : ns / 1e6)
  return {
    promptTokens: chunk.prompt_eval_count,
    promptMs: ms(chunk.prompt_eval_duration),
    generatedTokens: chunk.eval_count,
    generationMs: ms(chunk.eval_duration),
    cachedTokens: undefined,
  }
}
