/**
 * The snapshot `GET /velo/status` returns (and streams once a second as `text/event-stream`).
 * The serve TUI and `velo top` render exactly this, so it is the contract between them and the proxy.
 */
export type ModelState = 'unloaded' | 'loading' | 'ready' | 'unloading' | 'failed'

export interface ModelStatus {
  /** The id clients use (`velo-tiny`, `qwen2.5:7b`). */
  id: string
  aliases: string[]
  /** `managed` (velo runs llama-server), `ollama` or `openai`. */
  kind: 'managed' | 'ollama' | 'openai'
  /** Upstream base URL; for managed models the running llama-server's, when loaded. */
  upstream: string | undefined
  state: ModelState
  slotsBusy: number
  slotsTotal: number
  queueDepth: number
  /** Admission paused by an operator (TUI `p`). */
  paused: boolean
  requestsPerSecond: number
  generationTokensPerSecond: number
  ttftP50Ms: number | undefined
  ttftP95Ms: number | undefined
  /** The profile applied to this model, by id, when one matches. */
  profile: string | undefined
  /** Why the model is `failed`. */
  error: string | undefined
}

export interface RecentRequest {
  id: string
  at: string
  model: string
  /** API key name, or the client address when there are no keys. */
  client: string
  route: string
  status: number
  ttftMs: number | undefined
  promptTokens: number | undefined
  completionTokens: number | undefined
  durationMs: number
  cache: 'hit' | 'semantic-hit' | 'miss' | 'bypass'
}

export interface UpstreamHealth {
  url: string
  kind: 'managed' | 'ollama' | 'openai'
  healthy: boolean
  lastError: string | undefined
  lastErrorAt: string | undefined
  /** The upstream's circuit breaker (resilience.breaker); absent for managed llama-servers. */
  breaker?: 'closed' | 'open' | 'half-open'
  /** Consecutive failures its breaker has counted. */
  consecutiveFailures?: number
  /** Requests sent to it that have not finished (what the load balancer compares). */
  outstanding?: number
}

export interface VeloStatus {
  version: string
  listen: string
  startedAt: string
  uptimeSeconds: number
  totals: {
    requests: number
    errors: number
    promptTokens: number
    completionTokens: number
  }
  /** Rates over the last 5 seconds. */
  requestsPerSecond: number
  tokensPerSecond: number
  /** Generation tokens/s, one value per second for the last 60 seconds, oldest first. */
  tokensPerSecondHistory: number[]
  cache: {
    hits: number
    semanticHits: number
    misses: number
    hitRate: number
    entries: number
    bytes: number
    // Optional: a dashboard may read the status of an older velo without them.
    /** The shared Redis tier: `off` when `cache.redis` is not set. */
    redis?: 'up' | 'down' | 'off'
    /** Times the Redis tier went down since velo started. */
    redisOutages?: number
    /** Semantic lookups whose embedding call failed (a misconfigured semantic cache only misses). */
    embedErrors?: number
  }
  models: ModelStatus[]
  recent: RecentRequest[]
  upstreams: UpstreamHealth[]
  errors: { at: string; message: string }[]
}
