import type { Summary } from './stats.js'

/**
 * - unary: a plain JSON answer; latency is request start to the end of the body.
 * - stamped-sse: the bench upstream's stream, whose chunks carry the time they were written
 *   (sse.ts chunkStamp); measures time to first byte, per-chunk one-way latency and gaps.
 * - chat-sse: a real engine's stream; measures time to first generated text and tokens.
 */
export type LoadMode = 'unary' | 'stamped-sse' | 'chat-sse'

/** One load run, handed from perf.ts to loadgen.ts as a JSON file. */
export interface LoadJob {
  origin: string
  path: string
  headers: Record<string, string>
  /** Request bodies taken in turn, in the order requests are sent (interleaves models for affinity). */
  bodies: string[]
  mode: LoadMode
  /** Clients, each with one request in flight at a time (closed loop), each on its own connection. */
  concurrency: number
  /** Measure for this long (ms)... */
  durationMs?: number
  /** ...or for this many requests. */
  requests?: number
  /** Requests sent before measuring starts, to open connections and warm JITs (ms). */
  warmupMs: number
  timeoutMs: number
  /** Also summarize latency by this response header's value (x-velo-cache: hit|miss|bypass). */
  splitByHeader?: string
  /** Return the samples too (`raw`), so that runs can be pooled (merge.ts). */
  keepSamples?: boolean
}

export interface LoadResult {
  /** Requests answered with 2xx. */
  ok: number
  /** Requests answered otherwise, or that failed on the network. */
  errors: number
  /** Requests sent again after a stale keep-alive connection failed before any response. */
  retries: number
  elapsedMs: number
  /** ok / elapsed. */
  rps: number
  /** Latency of the 2xx requests (ms). */
  latency: Summary
  /** Status codes (or error codes) seen, with counts. */
  statuses: Record<string, number>
  firstError: string | undefined
  byHeader: Record<string, Summary> | undefined
  /** Time to the first body byte (ms), streaming modes. */
  ttfb: Summary | undefined
  /** stamped-sse: time from the upstream writing a chunk to the client receiving it (ms). */
  chunkOneWay: Summary | undefined
  /** Time between consecutive events of one stream at the client (ms). */
  chunkGap: Summary | undefined
  /** Events received (streaming modes). */
  events: number
  /** chat-sse: time to the first generated text (ms). */
  ttft: Summary | undefined
  /** chat-sse: completion tokens (usage when the stream carries it, else text chunks). */
  completionTokens: number
  tokensPerSecond: number
  /**
   * With `keepSamples`: latency, ttfb, chunkOneWay, chunkGap and ttft samples (ms), and
   * `header:<value>` for the latencies split by the response header.
   */
  raw?: Record<string, number[]>
}
