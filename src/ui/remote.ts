import { createParser } from 'eventsource-parser'
import { Agent, type Dispatcher, request } from 'undici'
import { errorMessage, VeloError } from '../core/errors.js'
import type { VeloStatus } from '../proxy/status-types.js'
import type { ConnectionInfo, DashboardActions, StatusSource } from './source.js'

export interface RemoteOptions {
  /** A running velo's base URL (`http://127.0.0.1:8000`). */
  url: string
  /** An admin key, when velo has API keys configured. */
  apiKey?: string | undefined
  /** First reconnect delay; doubles per failed attempt up to `maxBackoffMs`. */
  minBackoffMs?: number
  maxBackoffMs?: number
  /** A stream with no event for this long is treated as dead and reopened (velo sends one a second). */
  staleMs?: number
}

export interface Remote {
  /** Streams `/velo/status` from the first subscribe until `close()`, reconnecting with backoff. */
  source: StatusSource
  /** The keys' admin calls: `POST /velo/models/{id}/{unload,load,pause,resume}`, `/velo/cache/clear`. */
  actions: DashboardActions
  /** One `GET /velo/status` snapshot. */
  fetchStatus(): Promise<VeloStatus>
  close(): Promise<void>
}

/** `velo top`'s view of a running velo over HTTP. */
export function createRemote(options: RemoteOptions): Remote {
  const base = baseUrl(options.url)
  const agent = new Agent({ keepAliveTimeout: 10_000, connectTimeout: 5000 })
  const headers = (accept: string): Record<string, string> => ({
    accept,
    ...(options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {}),
  })

  const post = async (path: string, what: string): Promise<void> => {
    let response: Dispatcher.ResponseData
    try {
      response = await request(`${base}${path}`, {
        method: 'POST',
        headers: headers('application/json'),
        dispatcher: agent,
        headersTimeout: 60_000,
        bodyTimeout: 60_000,
      })
    } catch (error) {
      throw unreachable(base, error)
    }
    const text = await response.body.text()
    if (response.statusCode >= 300) {
      throw new VeloError(
        'VELO_UPSTREAM_ERROR',
        `${what}: velo answered HTTP ${response.statusCode}${bodyMessage(text)}`,
        authSuggestion(response.statusCode),
      )
    }
  }
  const model = (id: string, verb: string) =>
    post(`/velo/models/${encodeURIComponent(id)}/${verb}`, `${verb} ${id}`)

  const source = remoteSource(base, agent, headers('text/event-stream'), options)
  return {
    source,
    actions: {
      unload: (id) => model(id, 'unload'),
      load: (id) => model(id, 'load'),
      pause: (id) => model(id, 'pause'),
      resume: (id) => model(id, 'resume'),
      clearCache: () => post('/velo/cache/clear', 'clear the cache'),
    },
    async fetchStatus() {
      let response: Dispatcher.ResponseData
      try {
        response = await request(`${base}/velo/status`, {
          headers: headers('application/json'),
          dispatcher: agent,
          headersTimeout: 10_000,
          bodyTimeout: 10_000,
        })
      } catch (error) {
        throw unreachable(base, error)
      }
      const text = await response.body.text()
      if (response.statusCode !== 200) {
        throw new VeloError(
          'VELO_UPSTREAM_ERROR',
          `GET /velo/status: velo answered HTTP ${response.statusCode}${bodyMessage(text)}`,
          authSuggestion(response.statusCode),
        )
      }
      return parseStatus(text)
    },
    async close() {
      source.close?.()
      await agent.close()
    },
  }
}

function remoteSource(
  base: string,
  agent: Agent,
  headers: Record<string, string>,
  options: RemoteOptions,
): StatusSource {
  const minBackoff = options.minBackoffMs ?? 250
  const maxBackoff = options.maxBackoffMs ?? 5000
  const listeners = new Set<() => void>()
  const abort = new AbortController()
  let latest: VeloStatus | undefined
  let connection: ConnectionInfo = { state: 'connecting', target: base, error: undefined, attempts: 0 }
  let started = false
  const notify = () => {
    for (const listener of listeners) listener()
  }
  const setConnection = (next: Partial<ConnectionInfo>) => {
    connection = { ...connection, ...next }
    notify()
  }

  const streamOnce = async () => {
    const response = await request(`${base}/velo/status`, {
      headers,
      dispatcher: agent,
      signal: abort.signal,
      headersTimeout: 10_000,
      bodyTimeout: options.staleMs ?? 5000,
    })
    if (response.statusCode !== 200) {
      const text = await response.body.text()
      const hint = authSuggestion(response.statusCode).suggestion
      throw new Error(`HTTP ${response.statusCode}${bodyMessage(text)}${hint ? ` (${hint})` : ''}`)
    }
    setConnection({ state: 'connected', error: undefined, attempts: 0 })
    const contentType = String(response.headers['content-type'] ?? '')
    if (!contentType.includes('text/event-stream')) {
      // A velo that ignores `Accept` answers with one JSON snapshot: poll it once a second.
      latest = parseStatus(await response.body.text())
      notify()
      await sleep(1000, abort.signal)
      return
    }
    let failure: Error | undefined
    const parser = createParser({
      onEvent(event) {
        try {
          latest = parseStatus(event.data)
          notify()
        } catch (error) {
          failure = error instanceof Error ? error : new Error(String(error))
        }
      },
    })
    response.body.setEncoding('utf8')
    for await (const chunk of response.body) {
      parser.feed(String(chunk))
      if (failure) {
        response.body.destroy()
        throw failure
      }
    }
    throw new Error('velo closed the status stream')
  }

  const loop = async () => {
    while (!abort.signal.aborted) {
      try {
        await streamOnce()
      } catch (error) {
        if (abort.signal.aborted) return
        const attempts = connection.attempts + 1
        setConnection({ state: 'disconnected', error: connectionError(error), attempts })
        await sleep(Math.min(maxBackoff, minBackoff * 2 ** (attempts - 1)), abort.signal)
      }
    }
  }

  return {
    snapshot: () => latest,
    connection: () => connection,
    subscribe(listener) {
      listeners.add(listener)
      if (!started) {
        started = true
        void loop()
      }
      return () => {
        listeners.delete(listener)
      }
    },
    close() {
      abort.abort()
      listeners.clear()
    },
  }
}

/** The snapshot in `text`, checked for the fields the views read, so a wrong URL fails clearly. */
export function parseStatus(text: string): VeloStatus {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new VeloError('VELO_UPSTREAM_ERROR', 'the /velo/status response is not JSON', {
      suggestion: 'check that --url points at velo serve, not at an upstream',
    })
  }
  if (!isVeloStatus(value)) {
    throw new VeloError('VELO_UPSTREAM_ERROR', 'the /velo/status response is not a velo status snapshot', {
      suggestion: 'check that --url points at velo serve, not at an upstream',
    })
  }
  return value
}

function isVeloStatus(value: unknown): value is VeloStatus {
  if (typeof value !== 'object' || value === null) return false
  const record = value as Record<string, unknown>
  return (
    typeof record['listen'] === 'string' &&
    typeof record['uptimeSeconds'] === 'number' &&
    typeof record['totals'] === 'object' &&
    typeof record['cache'] === 'object' &&
    Array.isArray(record['models']) &&
    Array.isArray(record['recent']) &&
    Array.isArray(record['upstreams']) &&
    Array.isArray(record['errors']) &&
    Array.isArray(record['tokensPerSecondHistory'])
  )
}

/** `http://host:port` from what the user typed; a clear error naming `--url` otherwise. */
export function baseUrl(input: string): string {
  let url: URL
  try {
    url = new URL(input)
  } catch {
    throw new VeloError(
      'VELO_BAD_REQUEST',
      `--url: expected a URL like http://127.0.0.1:8000, got "${input}"`,
      {
        exitCode: 2,
      },
    )
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new VeloError('VELO_BAD_REQUEST', `--url: expected an http or https URL, got "${input}"`, {
      exitCode: 2,
    })
  }
  // `velo top --url http://host:8000/velo/status` works too.
  const path = url.pathname.replace(/\/velo\/status\/?$/, '').replace(/\/+$/, '')
  return `${url.origin}${path}`
}

function unreachable(base: string, error: unknown): VeloError {
  return new VeloError(
    'VELO_UPSTREAM_UNREACHABLE',
    `cannot reach velo at ${base}: ${connectionError(error)}`,
    {
      suggestion: 'start it with `velo serve`, or check --url',
      cause: error,
    },
  )
}

function authSuggestion(status: number): { suggestion?: string } {
  if (status === 401 || status === 403) return { suggestion: 'pass an admin key with --api-key' }
  return {}
}

/** The error's own words: `connect ECONNREFUSED 127.0.0.1:8000` rather than `fetch failed`. */
function connectionError(error: unknown): string {
  if (error instanceof Error && error.cause instanceof Error) return error.cause.message
  return errorMessage(error)
}

/** `: <message>` from an OpenAI or Ollama error body, or its first line of text. */
function bodyMessage(text: string): string {
  const trimmed = text.trim()
  if (trimmed === '') return ''
  try {
    const body = JSON.parse(trimmed) as { error?: unknown; message?: unknown }
    if (typeof body.error === 'string') return `: ${body.error}`
    if (typeof body.error === 'object' && body.error !== null) {
      const message = (body.error as { message?: unknown }).message
      if (typeof message === 'string') return `: ${message}`
    }
    if (typeof body.message === 'string') return `: ${body.message}`
  } catch {
    // Not JSON: fall through to the text itself.
  }
  return `: ${trimmed.split('\n')[0]?.slice(0, 200)}`
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve()
      return
    }
    const done = () => {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal.addEventListener('abort', done)
  })
}
