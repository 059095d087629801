import { type Dispatcher, Pool, errors as undiciErrors } from 'undici'
import { errorMessage, VeloError } from '../errors.js'

export interface HttpOptions {
  /** Connections kept to the server; bench sizes it to its highest concurrency. */
  connections?: number | undefined
  /** How long to wait for response headers and between body chunks. */
  timeoutMs?: number | undefined
  headers?: Record<string, string> | undefined
}

export interface SendOptions {
  method?: 'GET' | 'POST'
  body?: unknown
  signal?: AbortSignal | undefined
  timeoutMs?: number | undefined
}

type ResponseData = Dispatcher.ResponseData

/** Resends of a request that met a connection the server had just closed. */
const STALE_RESENDS = 2

/**
 * One keep-alive pool per server, shared by every request of a bench run, with errors turned into
 * VeloErrors that name the server.
 */
export class HttpTarget {
  readonly baseUrl: string
  private readonly pool: Pool
  private readonly prefix: string
  private readonly timeoutMs: number
  private readonly headers: Record<string, string>

  constructor(baseUrl: string, options: HttpOptions = {}) {
    const url = new URL(baseUrl)
    this.prefix = url.pathname.replace(/\/+$/, '')
    this.baseUrl = `${url.origin}${this.prefix}`
    this.timeoutMs = options.timeoutMs ?? 300_000
    this.headers = options.headers ?? {}
    this.pool = new Pool(url.origin, {
      connections: Math.max(1, options.connections ?? 16),
      pipelining: 1,
      headersTimeout: this.timeoutMs,
      bodyTimeout: this.timeoutMs,
    })
  }

  /** Send a request; a status of 400 or more is returned, not thrown (callers word the error). */
  async send(path: string, options: SendOptions = {}): Promise<ResponseData> {
    const body = options.body === undefined ? undefined : JSON.stringify(options.body)
    const attempt = () =>
      this.pool.request({
        path: `${this.prefix}${path}`,
        method: options.method ?? (body === undefined ? 'GET' : 'POST'),
        headers: {
          ...this.headers,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body,
        signal: options.signal,
        headersTimeout: options.timeoutMs ?? this.timeoutMs,
        bodyTimeout: options.timeoutMs ?? this.timeoutMs,
      })
    // A kept-alive connection the server closed just as the request went out: nothing reached the
    // server, so sending again on another connection is safe (undici does not retry POSTs). Twice,
    // as a pool's idle connections tend to time out together.
    for (let resends = 0; ; resends++) {
      try {
        return await attempt()
      } catch (error) {
        if (resends >= STALE_RESENDS || !isStaleConnection(error) || options.signal?.aborted) {
          throw this.wrap(error, path)
        }
      }
    }
  }

  /**
   * A failure while reading a streamed answer, naming how far it got: `received` is what the caller
   * had counted (tokens, lines), so a report tells a cut before the first token from one mid-answer.
   * VeloErrors and aborts pass through untouched, as with wrap().
   */
  wrapMidStream(error: unknown, path: string, received: string): unknown {
    if (error instanceof VeloError) return error
    const wrapped = this.wrap(error, path)
    if (!(wrapped instanceof VeloError)) return wrapped
    return new VeloError(wrapped.code, `${wrapped.message} after ${received}`, {
      cause: error,
      status: wrapped.status,
      suggestion: wrapped.suggestion,
    })
  }

  /** GET or POST and parse JSON; an error status becomes a VeloError with the server's message. */
  async json<T>(path: string, options: SendOptions = {}): Promise<T> {
    const response = await this.send(path, options)
    const text = await readText(response, (error) => this.wrap(error, path))
    if (response.statusCode >= 400) throw httpError(this.baseUrl, path, response.statusCode, text)
    try {
      return JSON.parse(text) as T
    } catch {
      throw new VeloError('VELO_UPSTREAM_ERROR', `${this.baseUrl}${path} answered with invalid JSON`, {
        suggestion: 'check that --url points at an inference server',
      })
    }
  }

  /** Whether GET path answers 2xx within a short time (used to probe what kind of server this is). */
  async probe(path: string): Promise<{ status: number; body: string } | undefined> {
    try {
      const response = await this.send(path, { timeoutMs: 5000 })
      const body = await response.body.text()
      return { status: response.statusCode, body }
    } catch (error) {
      if (error instanceof VeloError && error.code === 'VELO_UPSTREAM_UNREACHABLE') throw error
      return undefined
    }
  }

  /** Turn a transport failure into a VeloError; an abort passes through untouched. */
  wrap(error: unknown, path: string): unknown {
    if (error instanceof VeloError) return error
    if (isAbort(error)) return error
    const code = (error as { code?: string }).code
    if (
      error instanceof undiciErrors.HeadersTimeoutError ||
      error instanceof undiciErrors.BodyTimeoutError ||
      code === 'UND_ERR_HEADERS_TIMEOUT' ||
      code === 'UND_ERR_BODY_TIMEOUT'
    ) {
      return new VeloError('VELO_UPSTREAM_TIMEOUT', `${this.baseUrl}${path} did not answer in time`, {
        suggestion: 'raise --timeout, or lower the load',
        cause: error,
      })
    }
    const causeCode = (error as { cause?: { code?: string } }).cause?.code
    // Only a failure to connect means the server is gone; a dropped connection is one failed request.
    const connectCodes = ['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']
    if (
      connectCodes.includes(code ?? '') ||
      connectCodes.includes(causeCode ?? '') ||
      code === 'UND_ERR_CONNECT_TIMEOUT'
    ) {
      const reason = connectCodes.includes(code ?? '') ? code : (causeCode ?? code ?? 'connection failed')
      return new VeloError('VELO_UPSTREAM_UNREACHABLE', `cannot reach ${this.baseUrl} (${reason})`, {
        suggestion: 'check that the server is running and --url is right',
        cause: error,
      })
    }
    if (code === 'UND_ERR_SOCKET' || code === 'ECONNRESET' || code === 'EPIPE') {
      return new VeloError(
        'VELO_UPSTREAM_ERROR',
        `${this.baseUrl}${path}: the connection broke off (${errorMessage(error)})`,
        {
          cause: error,
        },
      )
    }
    return new VeloError('VELO_UPSTREAM_ERROR', `${this.baseUrl}${path}: ${errorMessage(error)}`, {
      cause: error,
    })
  }

  close(): Promise<void> {
    return this.pool.close()
  }
}

async function readText(response: ResponseData, wrap: (error: unknown) => unknown): Promise<string> {
  try {
    return await response.body.text()
  } catch (error) {
    throw wrap(error)
  }
}

function isStaleConnection(error: unknown): boolean {
  const code = (error as { code?: string }).code
  return code === 'UND_ERR_SOCKET' || code === 'ECONNRESET'
}

export function isAbort(error: unknown): boolean {
  return error instanceof Error && (error.name === 'AbortError' || error.name === 'RequestAbortedError')
}

/** The server's own words from an error body: OpenAI `{error:{message}}`, Ollama `{error}`, or text. */
export function serverMessage(text: string): string {
  try {
    const parsed = JSON.parse(text) as { error?: unknown; message?: unknown }
    if (typeof parsed.error === 'string') return parsed.error
    if (parsed.error && typeof parsed.error === 'object') {
      const message = (parsed.error as { message?: unknown }).message
      if (typeof message === 'string') return message
    }
    if (typeof parsed.message === 'string') return parsed.message
  } catch {
    // Not JSON: use the text itself.
  }
  return text.trim().slice(0, 300) || 'no details'
}

export function httpError(baseUrl: string, path: string, status: number, text: string): VeloError {
  const message = serverMessage(text)
  if (status === 404 && /model/i.test(message)) {
    return new VeloError('VELO_MODEL_NOT_FOUND', `${baseUrl}: ${message}`, {
      suggestion: 'check --model against the models the server lists',
    })
  }
  return new VeloError('VELO_UPSTREAM_ERROR', `${baseUrl}${path} answered ${status}: ${message}`, {
    status: status >= 500 ? 502 : status,
  })
}

/** Split a byte stream into lines (NDJSON), keeping a partial line across chunks. */
export async function* lines(body: AsyncIterable<Buffer | string>): AsyncGenerator<string> {
  let partial = ''
  // A streaming decoder keeps a multi-byte character that straddles two chunks whole.
  const decoder = new TextDecoder()
  for await (const chunk of body) {
    const text = partial + (typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true }))
    const parts = text.split('\n')
    partial = parts.pop() ?? ''
    for (const line of parts) if (line.trim()) yield line
  }
  if (partial.trim()) yield partial
}
