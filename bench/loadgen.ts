/**
 * The load generator: `tsx bench/loadgen.ts JOB.json RESULT.json`. It runs in its own process, apart
 * from every target, so that its event loop and the targets' do not compete inside one Node process.
 *
 * Closed loop: `concurrency` clients, each with one request in flight on its own keep-alive connection
 * (undici Pool), sending the next as soon as the last ends. Latency is process.hrtime.bigint() from
 * before the request to the end of the body. A warm-up runs the same loop first and is discarded.
 */
import { readFile, writeFile } from 'node:fs/promises'
import { Pool } from 'undici'
import type { LoadJob, LoadResult } from './lib/load-types.js'
import { Samples, type Summary } from './lib/stats.js'
import { ChatStreamReader, StampedStreamReader, type StreamReader } from './lib/stream-readers.js'

interface Recorder {
  latency: Samples
  ttfb: Samples
  chunkOneWay: Samples
  chunkGap: Samples
  ttft: Samples
  byHeader: Map<string, Samples>
  statuses: Map<string, number>
  ok: number
  errors: number
  retries: number
  events: number
  completionTokens: number
  firstError: string | undefined
}

function recorder(): Recorder {
  return {
    latency: new Samples(),
    ttfb: new Samples(),
    chunkOneWay: new Samples(),
    chunkGap: new Samples(),
    ttft: new Samples(),
    byHeader: new Map(),
    statuses: new Map(),
    ok: 0,
    errors: 0,
    retries: 0,
    events: 0,
    completionTokens: 0,
    firstError: undefined,
  }
}

function count(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1)
}

function headerValue(value: string | string[] | undefined): string {
  if (value === undefined) return '(none)'
  return Array.isArray(value) ? value.join(',') : value
}

function readerFor(job: LoadJob, start: bigint, rec: Recorder): StreamReader | undefined {
  if (job.mode === 'stamped-sse') {
    return new StampedStreamReader(start, {
      firstByte: (ms) => rec.ttfb.push(ms),
      chunk: (oneWayMs, gapMs) => {
        rec.events++
        if (oneWayMs !== undefined) rec.chunkOneWay.push(oneWayMs)
        if (gapMs !== undefined) rec.chunkGap.push(gapMs)
      },
    })
  }
  if (job.mode === 'chat-sse') {
    return new ChatStreamReader(start, {
      firstByte: (ms) => rec.ttfb.push(ms),
      firstText: (ms) => rec.ttft.push(ms),
      chunk: (gapMs) => {
        rec.events++
        if (gapMs !== undefined) rec.chunkGap.push(gapMs)
      },
    })
  }
  return undefined
}

/**
 * A keep-alive connection the server closed just as a request went out fails with UND_ERR_SOCKET
 * before any response; like a browser, send that request once more on a fresh connection (counted).
 */
function staleConnection(error: unknown, responded: boolean): boolean {
  return !responded && (error as { code?: unknown }).code === 'UND_ERR_SOCKET'
}

async function once(pool: Pool, job: LoadJob, body: string, rec: Recorder, retry = true): Promise<void> {
  const start = process.hrtime.bigint()
  let responded = false
  try {
    const response = await pool.request({ path: job.path, method: 'POST', headers: job.headers, body })
    responded = true
    const okStatus = response.statusCode >= 200 && response.statusCode < 300
    if (!okStatus) {
      const text = await response.body.text()
      rec.errors++
      count(rec.statuses, String(response.statusCode))
      rec.firstError ??= `HTTP ${response.statusCode}: ${text.slice(0, 300)}`
      return
    }
    const reader = readerFor(job, start, rec)
    if (reader) {
      for await (const chunk of response.body) reader.push(chunk as Buffer, process.hrtime.bigint())
      rec.completionTokens += reader.finish()
    } else {
      await response.body.dump({ limit: 1 << 24 })
    }
    const ms = Number(process.hrtime.bigint() - start) / 1e6
    rec.ok++
    count(rec.statuses, String(response.statusCode))
    rec.latency.push(ms)
    if (job.splitByHeader) {
      const value = headerValue(response.headers[job.splitByHeader])
      let samples = rec.byHeader.get(value)
      if (!samples) {
        samples = new Samples(256)
        rec.byHeader.set(value, samples)
      }
      samples.push(ms)
    }
  } catch (error) {
    if (retry && staleConnection(error, responded)) {
      rec.retries++
      return once(pool, job, body, rec, false)
    }
    rec.errors++
    const code = (error as { code?: unknown }).code
    count(rec.statuses, typeof code === 'string' ? code : 'error')
    rec.firstError ??=
      error instanceof Error ? `${error.message}${responded ? ' (mid-response)' : ''}` : String(error)
  }
}

/** Run the closed loop until the deadline or until `requests` were sent; returns the elapsed ms. */
async function loop(
  pool: Pool,
  job: LoadJob,
  rec: Recorder,
  limit: { untilMs?: number; requests?: number },
): Promise<number> {
  let sent = 0
  let turn = 0
  const more = (): boolean =>
    limit.requests !== undefined ? sent < limit.requests : performance.now() < (limit.untilMs ?? 0)
  const client = async (): Promise<void> => {
    while (more()) {
      sent++
      const body = job.bodies[turn++ % job.bodies.length] ?? ''
      await once(pool, job, body, rec)
    }
  }
  const started = performance.now()
  await Promise.all(Array.from({ length: job.concurrency }, client))
  return performance.now() - started
}

function maybe(samples: Samples): Summary | undefined {
  return samples.length > 0 ? samples.summary() : undefined
}

export async function runLoad(job: LoadJob): Promise<LoadResult> {
  const pool = new Pool(job.origin, {
    connections: job.concurrency,
    pipelining: 1,
    headersTimeout: job.timeoutMs,
    bodyTimeout: job.timeoutMs,
    keepAliveTimeout: 60_000,
  })
  try {
    if (job.warmupMs > 0) await loop(pool, job, recorder(), { untilMs: performance.now() + job.warmupMs })
    const rec = recorder()
    const elapsedMs = await loop(
      pool,
      job,
      rec,
      job.requests !== undefined
        ? { requests: job.requests }
        : { untilMs: performance.now() + (job.durationMs ?? 5000) },
    )
    const raw: Record<string, number[]> | undefined = job.keepSamples
      ? {
          latency: Array.from(rec.latency.values()),
          ttfb: Array.from(rec.ttfb.values()),
          chunkOneWay: Array.from(rec.chunkOneWay.values()),
          chunkGap: Array.from(rec.chunkGap.values()),
          ttft: Array.from(rec.ttft.values()),
          ...Object.fromEntries(
            [...rec.byHeader].map(([value, samples]) => [`header:${value}`, Array.from(samples.values())]),
          ),
        }
      : undefined
    const byHeader = job.splitByHeader
      ? Object.fromEntries([...rec.byHeader].map(([value, samples]) => [value, samples.summary()]))
      : undefined
    return {
      ok: rec.ok,
      errors: rec.errors,
      retries: rec.retries,
      elapsedMs,
      rps: rec.ok / (elapsedMs / 1000),
      latency: rec.latency.summary(),
      statuses: Object.fromEntries(rec.statuses),
      firstError: rec.firstError,
      byHeader,
      ttfb: maybe(rec.ttfb),
      chunkOneWay: maybe(rec.chunkOneWay),
      chunkGap: maybe(rec.chunkGap),
      events: rec.events,
      ttft: maybe(rec.ttft),
      completionTokens: rec.completionTokens,
      tokensPerSecond: rec.completionTokens / (elapsedMs / 1000),
      raw,
    }
  } finally {
    await pool.close()
  }
}

const [jobFile, resultFile] = process.argv.slice(2)
if (!jobFile || !resultFile) {
  console.error('usage: tsx bench/loadgen.ts JOB.json RESULT.json')
  process.exit(2)
}
const job = JSON.parse(await readFile(jobFile, 'utf8')) as LoadJob
const result = await runLoad(job)
await writeFile(resultFile, JSON.stringify(result))
