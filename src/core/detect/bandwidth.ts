import { Worker } from 'node:worker_threads'
import type { MeasuredBandwidth } from './types.js'

/**
 * Each worker copies one large buffer into another in a loop (TypedArray#set is a memmove) and counts
 * bytes read plus bytes written, as STREAM's Copy does. Workers start together on a shared flag so
 * their windows overlap, and the sum of their rates is the machine's. The code is a string run with
 * `eval: true` so it works the same from the built CLI and from TypeScript sources under a test runner.
 */
const WORKER_CODE = `
const { parentPort, workerData } = require('node:worker_threads')
const { bufferBytes, windowMs, flag } = workerData
const src = new Float64Array(bufferBytes / 8)
const dst = new Float64Array(bufferBytes / 8)
for (let i = 0; i < src.length; i += 512) src[i] = i
dst.set(src)
parentPort.postMessage({ ready: true })
Atomics.wait(new Int32Array(flag), 0, 0)
let copies = 0
const start = performance.now()
let now = start
while (now - start < windowMs) {
  dst.set(src)
  copies++
  now = performance.now()
}
parentPort.postMessage({ bytes: copies * bufferBytes * 2, ms: now - start })
`

export interface BandwidthOptions {
  threads: number
  /** Size of each of a worker's two buffers; well past any CPU cache. */
  bufferBytes?: number
  /** How long the copy loops run once all workers are ready. */
  windowMs?: number
  /** Give up (and report nothing) after this long, including allocation. */
  deadlineMs?: number
}

export interface BandwidthResult {
  measured: MeasuredBandwidth | null
  error: string | null
}

/** Measure main-memory copy bandwidth in a few worker threads, within `deadlineMs` (2 s by default). */
export async function measureMemoryBandwidth(options: BandwidthOptions): Promise<BandwidthResult> {
  const started = performance.now()
  const threads = Math.max(1, Math.floor(options.threads))
  const bufferBytes = options.bufferBytes ?? 64 * 1024 ** 2
  const windowMs = options.windowMs ?? 500
  const deadlineMs = options.deadlineMs ?? 2000
  const flag = new SharedArrayBuffer(4)
  const workers: Worker[] = []
  let timer: NodeJS.Timeout | undefined
  try {
    const results = await new Promise<Array<{ bytes: number; ms: number }>>((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`did not finish within ${deadlineMs} ms`)), deadlineMs)
      let ready = 0
      const done: Array<{ bytes: number; ms: number }> = []
      for (let i = 0; i < threads; i++) {
        const worker = new Worker(WORKER_CODE, { eval: true, workerData: { bufferBytes, windowMs, flag } })
        workers.push(worker)
        worker.on('error', reject)
        worker.on('message', (message: { ready?: true; bytes?: number; ms?: number }) => {
          if (message.ready) {
            ready++
            if (ready === threads) {
              Atomics.store(new Int32Array(flag), 0, 1)
              Atomics.notify(new Int32Array(flag), 0)
            }
            return
          }
          done.push({ bytes: message.bytes ?? 0, ms: message.ms ?? 0 })
          if (done.length === threads) resolve(done)
        })
      }
    })
    const gbPerSecond = results.reduce((sum, r) => sum + (r.ms > 0 ? r.bytes / (r.ms / 1000) : 0), 0) / 1e9
    return {
      measured: {
        gbPerSecond: Math.round(gbPerSecond * 10) / 10,
        threads,
        bufferBytes,
        durationMs: Math.round(performance.now() - started),
      },
      error: null,
    }
  } catch (error) {
    return { measured: null, error: error instanceof Error ? error.message : String(error) }
  } finally {
    clearTimeout(timer)
    await Promise.all(workers.map((worker) => worker.terminate()))
  }
}

/** Threads and buffer size for this machine: one worker per core up to 8, never more than 1/8 of free RAM. */
export function bandwidthPlan(cores: number, usableBytes: number): { threads: number; bufferBytes: number } {
  const threads = Math.max(1, Math.min(8, cores))
  const perWorker = Math.floor(usableBytes / 8 / threads / 2)
  const bufferBytes = Math.max(8 * 1024 ** 2, Math.min(64 * 1024 ** 2, perWorker))
  return { threads, bufferBytes: bufferBytes - (bufferBytes % 4096) }
}
