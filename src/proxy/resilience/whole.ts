/**
 * One upstream request whose answer is read whole into a Buffer, on undici's dispatch API.
 *
 * `pool.request()` wraps every answer in a Readable stream (with an async resource, an end-of-stream
 * watcher and, when iterated, an async iterator): about a tenth of velo's CPU per non-streamed
 * request on the perf bench. A plain answer needs none of that: its chunks are collected as they
 * arrive and handed over once, with the same errors (codes and timeouts) `request()` gives.
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

class WholeHandler implements Dispatcher.DispatchHandler {
  private statusCode = 0
  private headers: IncomingHttpHeaders = {}
  private readonly chunks: Buffer[] = []
  private size = 0
  private controller: Dispatcher.DispatchController | undefined
  private readonly onAbort = (): void => this.controller?.abort(this.signal.reason)

  constructor(
    private readonly signal: AbortSignal,
    private readonly resolve: (answer: WholeAnswer) => void,
    private readonly reject: (error: unknown) => void,
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
    if (statusCode < 200) return
    this.statusCode = statusCode
    this.headers = headers
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.chunks.push(chunk)
    this.size += chunk.length
  }

  onResponseEnd(): void {
    this.signal.removeEventListener('abort', this.onAbort)
    const only = this.chunks.length === 1 ? this.chunks[0] : undefined
    this.resolve({
      statusCode: this.statusCode,
      headers: this.headers,
      body: only ?? Buffer.concat(this.chunks, this.size),
    })
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.signal.removeEventListener('abort', this.onAbort)
    this.reject(
      this.statusCode > 0 && !this.signal.aborted ? new CutOffAnswer(this.statusCode, error) : error,
    )
  }
}

/** Send one request and read its answer whole; rejects with undici's error, or the signal's reason. */
export function requestWhole(
  dispatcher: Dispatcher,
  options: Dispatcher.DispatchOptions,
  signal: AbortSignal,
): Promise<WholeAnswer> {
  if (signal.aborted) return Promise.reject(signal.reason)
  return new Promise((resolve, reject) => {
    dispatcher.dispatch(options, new WholeHandler(signal, resolve, reject))
  })
}
