/**
 * The seams between velo serve's request path and its optimizing stages (scheduler, cache,
 * tool-call repair). The server calls these interfaces; the stages implement them. Keeping them
 * here lets each side be built and tested on its own.
 */

/** What the scheduler needs to know about one request. */
export interface AdmissionRequest {
  /** The resolved model id (after aliases), which is also the queue it waits in. */
  model: string
  /** Higher runs first (`x-velo-priority`); 0 by default. */
  priority: number
  /** Fairness key: the API key's name, else the client address. */
  client: string
  /** Prompt length estimate in characters, for `auto` routing and affinity decisions. */
  promptChars: number
  /** Aborted when the client goes away while queued. */
  signal: AbortSignal
  /**
   * Prefix affinity keys, most specific first (`prefixKeys(body)` in scheduler/prefix-affinity.ts);
   * requests with a common key run on the same slot when it is free. A function, because hashing
   * the prompt is wasted on upstreams without slots: it is called only when a slot is picked.
   */
  prefixKeys?: () => readonly string[]
}

/** What the server knows about a model's upstream when it sets the capacity. */
export interface CapacityOptions {
  /** The upstream takes `id_slot` (llama-server): leases then carry a slot for prefix affinity. */
  slots?: boolean
}

/** Held while the request runs upstream; release exactly once when it ends (success or not). */
export interface AdmissionLease {
  /** Milliseconds spent waiting in the queue (goes into `x-velo-queue-ms`). */
  queueMs: number
  /** A llama-server slot to pin the request to (`id_slot`), for prefix affinity; undefined if none. */
  slot: number | undefined
  release(): void
}

export interface Scheduler {
  /**
   * Wait for a place to run. Rejects with a VeloError of status 429 (queue full or timed out, with
   * `retryAfterSeconds`) or 503 (overloaded), or with the signal's reason when the client left.
   */
  acquire(request: AdmissionRequest): Promise<AdmissionLease>
  /** The upstream's real parallel capacity changed (model loaded, /props read, profile applied). */
  setCapacity(model: string, slots: number, options?: CapacityOptions): void
  /** Fair-share weights by client changed (`scheduler.weights` reloaded). */
  setWeights?(weights: Record<string, number>): void
  pause(model: string): void
  resume(model: string): void
  snapshot(model: string): { queueDepth: number; running: number; capacity: number; paused: boolean }
  /** Server shutdown: reject what is still queued and stop timers. */
  close?(): void
  /** Running totals for /metrics: rejections by reason, model switches. */
  stats?(): { rejected: Record<string, number>; switches: number }
}

export type CacheOutcome = 'hit' | 'semantic-hit' | 'miss' | 'bypass'

/** A stored response, replayable as it was sent (stream or not). */
export interface CachedResponse {
  status: number
  contentType: string
  /** For a streamed response: the frames as sent (SSE events or NDJSON lines), in order. */
  chunks: string[] | undefined
  /** For a plain response: the body. */
  body: string | undefined
  similarity?: number
}

export interface CacheLookup {
  /** The normalized key of this request (undefined when the request is not cacheable). */
  key: string | undefined
  outcome: CacheOutcome
  response: CachedResponse | undefined
  /** `Cache-Control: no-store` (or the cache is off for this request): `store` writes nothing. */
  noStore?: boolean
  /** Why the lookup bypassed the cache (for logs): `no-cache`, `not-deterministic`, `route`, ... */
  reason?: string
  /** Semantic-cache material computed at lookup, reused by `store` (no second embedding call). */
  semantic?: { namespace: string; vector: number[] }
}

export interface ResponseCache {
  /** `route` is the HTTP path; `body` the parsed request; headers for Cache-Control. */
  lookup(
    route: string,
    body: unknown,
    headers: Record<string, string | string[] | undefined>,
  ): Promise<CacheLookup>
  /** Store after a complete, successful response (never a partial stream). */
  store(lookup: CacheLookup, response: CachedResponse): Promise<void>
  clear(): Promise<number>
  stats(): {
    hits: number
    semanticHits: number
    misses: number
    entries: number
    bytes: number
    bypasses?: number
    evictions?: number
    stores?: number
    /** `up`, `down`, or `off` when no Redis tier is configured. */
    redis?: 'up' | 'down' | 'off'
    /** Times the Redis tier went down. */
    redisOutages?: number
    /** Semantic lookups whose embedding call failed. */
    embedErrors?: number
  }
  /** Server shutdown: disconnect shared tiers (Redis). */
  close?(): Promise<void>
}
