/**
 * Upstream requests on undici's dispatch API: an answer read whole into a Buffer, or streamed as
 * an async iterator of its chunks.
 *
 * `pool.request()` wraps every answer in a Readable stream (with an async resource, an end-of-stream
 * watcher and, when iterated, Node's stream async iterator): about a tenth of velo's CPU per
 * non-streamed request on the perf bench, and a few hops per chunk of a stream. velo needs none of
 * that: a plain answer's chunks are collected and handed over once, a stream's are queued for the
 * reader (pausing the socket when the reader falls behind), with the same errors (codes and
 * timeouts) `request()` gives.
 */
import type { IncomingHttpHeaders } from 'node:http'
import type { Dispatcher } from 'undici'

/** The upstream failed after its status line: the answer was cut off part way. */
export class CutOffAnswer extends Error {
  constructor(
    readonly statusCode: number,
    override readonly cause: Error,
  ) {
    super(cause.message)
    this.name = 'CutOffAnswer'
  }
}

export interface WholeAnswer {
  statusCode: number
  headers: IncomingHttpHeaders
  body: Buffer
}

/**
 * What both handlers share: the request is aborted when `signal` fires (the client left), and the
 * listener goes once the answer has ended or failed.
 */
abstract class SignalledHandler<Answer> implements Dispatcher.DispatchHandler {
  protected controller: Dispatcher.DispatchController | undefined
  private readonly onAbort = (): void => this.controller?.abort(this.signal.reason)

  constructor(
    protected readonly signal: AbortSignal,
    protected readonly resolve: (answer: Answer) => void,
    protected readonly reject: (error: unknown) => void,
  ) {
    signal.addEventListener('abort', this.onAbort, { once: true })
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller
    if (this.signal.aborted) controller.abort(this.signal.reason)
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
  ): void {
    // 1xx answers (100 Continue) come before the real one.
    if (statusCode >= 200) this.answered(statusCode, headers)
  }

  /** The status line and headers of the answer are in. */
  protected abstract answered(statusCode: number, headers: IncomingHttpHeaders): void

  protected detach(): void {
    this.signal.removeEventListener('abort', this.onAbort)
  }
}

class WholeHandler extends SignalledHandler<WholeAnswer> {
  private statusCode = 0
  private headers: IncomingHttpHeaders = {}
  private readonly chunks: Buffer[] = []
  private size = 0

  protected answered(statusCode: number, headers: IncomingHttpHeaders): void {
    this.statusCode = statusCode
    this.headers = headers
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.chunks.push(chunk)
    this.size += chunk.length
  }

  onResponseEnd(): void {
    this.detach()
    const only = this.chunks.length === 1 ? this.chunks[0] : undefined
    this.resolve({
      statusCode: this.statusCode,
      headers: this.headers,
      body: only ?? Buffer.concat(this.chunks, this.size),
    })
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.detach()
    this.reject(
      this.statusCode > 0 && !this.signal.aborted ? new CutOffAnswer(this.statusCode, error) : error,
    )
  }
}

type HandlerClass<Answer> = new (
  signal: AbortSignal,
  resolve: (answer: Answer) => void,
  reject: (error: unknown) => void,
) => SignalledHandler<Answer>

function send<Answer>(
  dispatcher: Dispatcher,
  options: Dispatcher.DispatchOptions,
  signal: AbortSignal,
  Handler: HandlerClass<Answer>,
): Promise<Answer> {
  if (signal.aborted) return Promise.reject(signal.reason)
  return new Promise((resolve, reject) => {
    dispatcher.dispatch(options, new Handler(signal, resolve, reject))
  })
}

/** Send one request and read its answer whole; rejects with undici's error, or the signal's reason. */
export function requestWhole(
  dispatcher: Dispatcher,
  options: Dispatcher.DispatchOptions,
  signal: AbortSignal,
): Promise<WholeAnswer> {
  return send(dispatcher, options, signal, WholeHandler)
}

/** Queued bytes past which the socket is paused until the reader catches up (Readable's default). */
const HIGH_WATER_BYTES = 64 * 1024
const LOW_WATER_BYTES = 16 * 1024

/**
 * The chunks of an answer as they arrive, for `for await`. Leaving the loop early (break, throw)
 * calls return(), which aborts the request: its connection is not reused half-read.
 */
export class ChunkQueue implements AsyncIterableIterator<Buffer> {
  private chunks: Buffer[] = []
  private bytes = 0
  private waiting:
    | { resolve: (result: IteratorResult<Buffer>) => void; reject: (error: unknown) => void }
    | undefined
  private ended = false
  private failure: { error: unknown } | undefined
  private paused = false
  controller: Dispatcher.DispatchController | undefined

  /** Ended, failed or abandoned: nothing more will come. */
  get finished(): boolean {
    return this.ended
  }

  push(chunk: Buffer): void {
    const waiting = this.waiting
    if (waiting) {
      this.waiting = undefined
      waiting.resolve({ value: chunk, done: false })
      return
    }
    this.chunks.push(chunk)
    this.bytes += chunk.length
    if (!this.paused && this.bytes >= HIGH_WATER_BYTES) {
      this.paused = true
      this.controller?.pause()
    }
  }

  end(): void {
    if (this.ended) return
    this.ended = true
    const waiting = this.waiting
    this.waiting = undefined
    waiting?.resolve({ value: undefined, done: true })
  }

  fail(error: unknown): void {
    if (this.ended) return
    this.ended = true
    const waiting = this.waiting
    this.waiting = undefined
    if (waiting) waiting.reject(error)
    else this.failure = { error }
  }

  next(): Promise<IteratorResult<Buffer>> {
    const chunk = this.chunks.shift()
    if (chunk !== undefined) {
      this.bytes -= chunk.length
      if (this.paused && this.bytes <= LOW_WATER_BYTES) {
        this.paused = false
        this.controller?.resume()
      }
      return Promise.resolve({ value: chunk, done: false })
    }
    const failure = this.failure
    if (failure) {
      this.failure = undefined
      return Promise.reject(failure.error)
    }
    if (this.ended) return Promise.resolve({ value: undefined, done: true })
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject }
    })
  }

  return(): Promise<IteratorResult<Buffer>> {
    this.chunks = []
    this.bytes = 0
    if (!this.ended) {
      this.ended = true
      this.controller?.abort(new Error('the reader left before the end of the answer'))
    }
    return Promise.resolve({ value: undefined, done: true })
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Buffer> {
    return this
  }
}

export interface StreamedAnswer {
  statusCode: number
  headers: IncomingHttpHeaders
  body: ChunkQueue
}

class StreamHandler extends SignalledHandler<StreamedAnswer> {
  readonly body = new ChunkQueue()
  private started = false

  override onRequestStart(controller: Dispatcher.DispatchController): void {
    // The queue pauses and resumes the socket as its reader keeps up, and aborts when it leaves.
    this.body.controller = controller
    super.onRequestStart(controller)
  }

  protected answered(statusCode: number, headers: IncomingHttpHeaders): void {
    this.started = true
    this.resolve({ statusCode, headers, body: this.body })
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.body.push(chunk)
  }

  onResponseEnd(): void {
    this.detach()
    this.body.end()
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.detach()
    if (this.started) this.body.fail(this.signal.aborted ? this.signal.reason : error)
    else this.reject(error)
  }
}

/**
 * Send one request; resolves once the status line and headers are in, with the body's chunks to
 * iterate. Rejects (before the headers) with undici's error or the signal's reason; a failure after
 * the headers comes out of the iteration.
 */
export function requestStream(
  dispatcher: Dispatcher,
  options: Dispatcher.DispatchOptions,
  signal: AbortSignal,
): Promise<StreamedAnswer> {
  return send(dispatcher, options, signal, StreamHandler)
}
