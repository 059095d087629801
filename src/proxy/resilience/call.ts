/**
 * Sending one inference request upstream, with the `resilience` settings: which upstream of the
 * model (fewest outstanding requests, breaker closed), how long to wait (connect, first token,
 * idle between chunks), and what to do when it fails before the client got a byte: another
 * upstream of the model at once, else the same again after a backoff, a bounded number of times.
 * Once bytes have gone to the client nothing is retried: the caller ends the stream with an error.
 */
import type { IncomingHttpHeaders } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Pool } from 'undici'
import { VeloError } from '../../core/errors.js'
import type { CatalogEntry } from '../catalog.js'
import { ClientClosed, type ProxyState, type RequestContext } from '../context.js'
import { upstreamErrorMessage } from '../errors.js'
import { describeNetworkError, type Upstream } from '../upstreams.js'
import { backoffDelay } from './backoff.js'
import { pickUpstream } from './balance.js'
import { type ChunkQueue, CutOffAnswer, requestStream, requestWhole } from './dispatch.js'
import { type ResilienceSettings, resilienceSettings } from './settings.js'

/** Where a request can be sent: an upstream, or a managed model's llama-server. */
export interface Endpoint {
  readonly pool: Pool
  path(route: string): string
  readonly headers: Record<string, string>
  /** For messages: `openai gpu-box`, `managed llama-server for velo-tiny (http://...)`. */
  readonly label: string
}

/**
 * How the caller reads the answer: `stream` peeks the first chunk before returning (so a stream
 * that never starts is retried like a refused connection) and hands the rest over chunk by chunk;
 * `whole` reads the body whole before returning (non-streamed answers), so an answer cut off part
 * way is retried like one that never came.
 */
export type CallMode = 'stream' | 'whole'

/** Upstream statuses that say "not now" rather than "not this request": retried, and breaker failures. */
function retryableStatus(status: number): boolean {
  return status === 502 || status === 503 || status === 504
}

/** Errors of velo's own making (bad options), not the upstream's: neither retried nor counted. */
function ownError(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code
  return code === 'UND_ERR_INVALID_ARG' || code === 'UND_ERR_NOT_SUPPORTED'
}

/** A kept-alive connection the upstream closed just as velo reused it: nothing was answered. */
function isStaleConnection(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code
  return code === 'UND_ERR_SOCKET' || code === 'ECONNRESET' || code === 'EPIPE'
}

function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`
}

/** A request failure before the client got anything, as the error the client gets. */
function failureError(endpoint: Endpoint, error: unknown, settings: ResilienceSettings): VeloError {
  if (error instanceof CutOffAnswer) {
    const why =
      (error.cause as { code?: unknown }).code === 'UND_ERR_BODY_TIMEOUT'
        ? `sent nothing for ${seconds(settings.idleTimeoutMs)} (resilience.timeouts.idle)`
        : describeNetworkError(error.cause)
    return new VeloError(
      'VELO_UPSTREAM_ERROR',
      `upstream ${endpoint.label} failed mid-response (after status ${error.statusCode}): ${why}`,
      { status: 502, cause: error },
    )
  }
  const code = (error as { code?: unknown } | undefined)?.code
  if (code === 'UND_ERR_HEADERS_TIMEOUT') {
    return new VeloError(
      'VELO_UPSTREAM_TIMEOUT',
      `upstream ${endpoint.label} sent no answer within ${seconds(settings.firstTokenTimeoutMs)} (first-token timeout)`,
      {
        suggestion: 'raise resilience.timeouts.firstToken in velo.yaml, or check the upstream',
        cause: error,
      },
    )
  }
  if (code === 'UND_ERR_CONNECT_TIMEOUT') {
    return new VeloError(
      'VELO_UPSTREAM_TIMEOUT',
      `upstream ${endpoint.label} did not accept a connection within ${seconds(settings.connectTimeoutMs)}`,
      {
        suggestion: 'check that the upstream is running and reachable, or raise resilience.timeouts.connect',
        cause: error,
      },
    )
  }
  if (code === 'UND_ERR_BODY_TIMEOUT') {
    return new VeloError(
      'VELO_UPSTREAM_TIMEOUT',
      `upstream ${endpoint.label} sent nothing for ${seconds(settings.idleTimeoutMs)} after its headers (idle timeout)`,
      { suggestion: 'raise resilience.timeouts.idle in velo.yaml, or check the upstream', cause: error },
    )
  }
  return new VeloError(
    'VELO_UPSTREAM_UNREACHABLE',
    `upstream ${endpoint.label} is unreachable (${describeNetworkError(error)})`,
    { suggestion: 'check that the upstream is running; GET /velo/status shows each upstream', cause: error },
  )
}

function statusError(endpoint: Endpoint, status: number, text: string): VeloError {
  return new VeloError(
    'VELO_UPSTREAM_ERROR',
    `upstream ${endpoint.label} answered ${status}: ${upstreamErrorMessage(text)}`,
  )
}

/** Every upstream of the model is skipped by its breaker: 503, and when to come back. */
function circuitOpen(entry: CatalogEntry, now: number, settings: ResilienceSettings): VeloError {
  let waitMs = Number.POSITIVE_INFINITY
  for (const upstream of entry.upstreams) {
    waitMs = Math.min(waitMs, upstream.breaker.retryAfterMs(now, settings.breaker))
  }
  const names = entry.upstreams.map((upstream) => upstream.name).join(', ')
  return new VeloError(
    'VELO_UPSTREAM_UNAVAILABLE',
    `every upstream of model ${entry.id} is failing (${names}): circuit breaker open after ${settings.breaker.failures} consecutive failures`,
    {
      suggestion: 'retry after Retry-After seconds; GET /velo/status shows each upstream and its breaker',
      // A probe already in flight has no cooldown left: a second is how long it takes to learn more.
      retryAfterSeconds: Math.max(1, Math.ceil((Number.isFinite(waitMs) ? waitMs : 1000) / 1000)),
    },
  )
}

/** An answer being read: the response, its first chunk, and what the breaker and balancer need at the end. */
export class UpstreamCall {
  readonly statusCode: number
  readonly headers: IncomingHttpHeaders
  /** The body read whole: in `whole` mode, and for error statuses in `stream` mode. */
  bytes: Buffer | undefined
  /** `stream` mode: the first chunk (undefined when the body was empty). */
  first: Buffer | undefined
  /** `stream` mode: the chunks after the first. */
  rest: AsyncIterableIterator<Buffer> | undefined
  private ended = false
  private decoded: string | undefined

  constructor(
    readonly endpoint: Endpoint,
    /** The upstream (for the breaker and balancer); undefined for a managed llama-server. */
    readonly upstream: Upstream | undefined,
    private probe: boolean,
    statusCode: number,
    headers: IncomingHttpHeaders,
    private readonly settings: ResilienceSettings,
    /** `stream` mode: the answer's body, read by the caller. */
    private readonly body?: ChunkQueue,
  ) {
    this.statusCode = statusCode
    this.headers = headers
  }

  /** The body read whole, as text ('' when it was not read whole). */
  get text(): string {
    this.decoded ??= this.bytes ? this.bytes.toString('utf8') : ''
    return this.decoded
  }

  /** The body's chunks, for peeking at the first before anything goes to the client (stream mode). */
  chunks(): AsyncIterableIterator<Buffer> {
    if (!this.body) throw new Error('UpstreamCall.chunks: the answer was read whole')
    return this.body
  }

  /** What peeking found: the first chunk (none when the body was empty), and the iterator to go on with. */
  peeked(first: IteratorResult<Buffer>, rest: AsyncIterableIterator<Buffer>): void {
    this.first = first.done ? undefined : first.value
    this.rest = rest
  }

  /** The upstream answered (any status but 502-504): it works. */
  succeeded(): void {
    this.probe = false
    this.upstream?.breaker.success()
    this.upstream?.markUp()
  }

  /** The upstream failed: one more consecutive failure for its breaker. */
  failed(): void {
    this.probe = false
    this.upstream?.breaker.failure(Date.now(), this.settings.breaker)
  }

  /**
   * The body broke after bytes went to the client (the caller ends the stream with an error frame):
   * counts against the upstream, and says why in words for the frame.
   */
  midStreamFailure(error: unknown): string {
    this.failed()
    if ((error as { code?: unknown } | undefined)?.code === 'UND_ERR_BODY_TIMEOUT') {
      return `sent nothing for ${seconds(this.settings.idleTimeoutMs)} (resilience.timeouts.idle)`
    }
    // The connection broke: the upstream is likely gone, so the next request goes elsewhere first.
    this.upstream?.markDown(error)
    return describeNetworkError(error)
  }

  /** The request is over (answered, failed or abandoned): free the balancer's count. */
  end(): void {
    if (this.ended) return
    this.ended = true
    // An answer left unread (the caller stopped at an error event): drop its connection.
    if (this.body && !this.body.finished) void this.body.return()
    if (this.upstream) {
      this.upstream.outstanding--
      if (this.probe) this.upstream.breaker.abandon()
    }
  }
}

/**
 * Send `payload` to `route` for `entry`: to `managed` when given (a managed model's leased
 * llama-server; timeouts only), else to the best of `entry.upstreams`, with timeouts, fallback and
 * retries before any byte reached the client. Resolves with an answer whose status the caller checks (502-504
 * only when every attempt failed with one); throws VeloError (504 timeout, 502 unreachable, 503
 * every breaker open) or ClientClosed. In `stream` mode the caller calls `end()` when done.
 */
export async function callUpstream(
  state: ProxyState,
  ctx: RequestContext,
  entry: CatalogEntry,
  managed: Endpoint | undefined,
  route: string,
  payload: string | Buffer,
  mode: CallMode,
  /** The upstream to try first while it has a free slot (prefix affinity; see pickUpstream). */
  preferred?: Upstream,
): Promise<UpstreamCall> {
  const settings = resilienceSettings(state.config)
  // A managed model's lease is one process: sending to it again would meet the same process (which
  // velo restarts on its own when it dies), so only the stale-connection resend applies there.
  const maxRetries = managed ? 0 : settings.retries
  const signal = ctx.abort.signal
  let failedHere: Upstream[] | undefined
  let retries = 0
  let staleRetried = false
  let lastError: VeloError | undefined
  for (;;) {
    let endpoint: Endpoint
    let upstream: Upstream | undefined
    let probe = false
    if (managed) {
      endpoint = managed
    } else {
      const now = Date.now()
      upstream = pickUpstream(entry.upstreams, failedHere, now, settings.breaker, preferred)
      if (!upstream) {
        if (lastError) throw lastError
        throw circuitOpen(entry, now, settings)
      }
      probe = upstream.breaker.acquire(now, settings.breaker) === 'probe'
      upstream.outstanding++
      upstream.setConnectTimeout(settings.connectTimeoutMs)
      ctx.record.upstream = upstream.name
      endpoint = upstream
    }
    let call: UpstreamCall | undefined
    let failure: VeloError
    try {
      const options = {
        path: endpoint.path(route),
        method: 'POST' as const,
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream, application/x-ndjson',
          'x-request-id': ctx.id,
          ...endpoint.headers,
        },
        body: payload,
        // undici's own parser timers, reused per connection: no timer of velo's per request.
        headersTimeout: settings.firstTokenTimeoutMs,
        bodyTimeout: settings.idleTimeoutMs,
      }
      if (mode === 'whole') {
        const answer = await requestWhole(endpoint.pool, options, signal)
        call = new UpstreamCall(endpoint, upstream, probe, answer.statusCode, answer.headers, settings)
        call.bytes = answer.body
      } else {
        const response = await requestStream(endpoint.pool, options, signal)
        call = new UpstreamCall(
          endpoint,
          upstream,
          probe,
          response.statusCode,
          response.headers,
          settings,
          response.body,
        )
        if (call.statusCode >= 400) {
          const parts: Buffer[] = []
          for await (const chunk of response.body) parts.push(chunk)
          call.bytes = Buffer.concat(parts)
        } else {
          // Peek before any byte goes to the client, so a stream that never starts can go elsewhere.
          // Inline rather than in a method: the success path takes no await beyond the read itself.
          const rest = call.chunks()
          call.peeked(await rest.next(), rest)
        }
      }
      if (!retryableStatus(call.statusCode)) {
        call.succeeded()
        if (mode === 'whole') call.end()
        return call
      }
      failure = statusError(endpoint, call.statusCode, call.text)
      call.failed()
    } catch (error) {
      if (signal.aborted) {
        if (call) call.end()
        else if (upstream) release(upstream, probe)
        throw new ClientClosed()
      }
      if (ownError(error)) {
        if (call) call.end()
        else if (upstream) release(upstream, probe)
        throw error
      }
      if (!call && !staleRetried && isStaleConnection(error)) {
        // The body is in memory: send it once more on a fresh connection, at once.
        staleRetried = true
        if (upstream) release(upstream, probe)
        state.logger.debug(
          { id: ctx.id, upstream: endpoint.label, err: describeNetworkError(error) },
          'retrying',
        )
        continue
      }
      failure = failureError(endpoint, error, settings)
      // The connection broke (before or during the answer): the next request goes elsewhere first.
      if (failure.code === 'VELO_UPSTREAM_UNREACHABLE' || error instanceof CutOffAnswer) {
        upstream?.markDown(error instanceof CutOffAnswer ? error.cause : error)
      }
      if (call) call.failed()
      else upstream?.breaker.failure(Date.now(), settings.breaker)
    }
    // This attempt failed before the client got a byte: try elsewhere, or here again, or give up.
    if (call) call.end()
    else if (upstream) release(upstream, probe, false)
    lastError = failure
    if (upstream) {
      failedHere ??= []
      failedHere.push(upstream)
    }
    const elsewhere =
      upstream !== undefined && pickUpstream(entry.upstreams, failedHere, Date.now(), settings.breaker)
    if (elsewhere) {
      state.logger.warn(
        { id: ctx.id, upstream: endpoint.label, next: elsewhere.label, err: failure.message },
        'upstream failed before answering: trying another',
      )
      continue
    }
    if (retries >= maxRetries) {
      // The last answer, when there was one, goes to the client as the upstream gave it.
      if (call && failure.code === 'VELO_UPSTREAM_ERROR') return call
      throw failure
    }
    retries++
    const delay = backoffDelay(retries, settings.backoffMs, settings.maxBackoffMs)
    state.logger.warn(
      {
        id: ctx.id,
        upstream: endpoint.label,
        retry: retries,
        delayMs: Math.round(delay),
        err: failure.message,
      },
      'upstream failed before answering: retrying',
    )
    try {
      await sleep(delay, undefined, { signal })
    } catch {
      throw new ClientClosed()
    }
    failedHere = undefined
  }
}

/** Undo what picking an upstream took, for an attempt that got no answer object. */
function release(upstream: Upstream, probe: boolean, abandon = true): void {
  upstream.outstanding--
  if (probe && abandon) upstream.breaker.abandon()
}
