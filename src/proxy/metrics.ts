import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'

/** The metrics of one velo server, in its own Registry (tests and several servers never share one). */
export interface VeloMetrics {
  registry: Registry
  requests: Counter<'model' | 'route' | 'status'>
  duration: Histogram<'model' | 'route'>
  ttft: Histogram<'model'>
  tokens: Counter<'model' | 'kind'>
  active: Gauge<'model'>
  queueDepth: Gauge<'model'>
  upstreamUp: Gauge<'upstream'>
  /** Circuit breaker per upstream: 0 closed, 1 half-open, 2 open. */
  upstreamBreaker: Gauge<'upstream'>
  /** Requests sent to an upstream that have not finished. */
  upstreamOutstanding: Gauge<'upstream'>
  modelLoaded: Gauge<'model'>
  /** Semantic-cache nearest-neighbour similarity per lookup, labelled by whether it hit. */
  cacheSimilarity: Histogram<'hit'>
}

/** The optimizing stages' counters, read at scrape time (no per-request cost). */
export interface StageSources {
  cache?: () => {
    hits: number
    semanticHits: number
    misses: number
    entries: number
    bytes: number
    bypasses?: number
    evictions?: number
    stores?: number
    /** `off` (or absent) when no Redis tier is configured. */
    redis?: 'up' | 'down' | 'off'
    redisOutages?: number
    embedErrors?: number
  }
  scheduler?: () => { rejected: Record<string, number>; switches: number }
  toolCalls?: () => Record<string, number>
}

/** Counter whose value is whatever `read` says at scrape time (the stage keeps the running total). */
function counterOf(registry: Registry, name: string, help: string, read: () => number | undefined): void {
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset()
      this.inc(read() ?? 0)
    },
  })
}

function gaugeOf(registry: Registry, name: string, help: string, read: () => number): void {
  new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      this.set(read())
    },
  })
}

/** Scheduler rejection reasons and the status the client got for each. */
const REJECTION_STATUS: Record<string, string> = {
  queueFull: '429',
  pushedOut: '429',
  timeout: '429',
  overloaded: '503',
  aborted: '499',
}

/** Register the cache, scheduler and tool-call counters of this server's stages. */
export function registerStageMetrics(registry: Registry, sources: StageSources): void {
  const cache = sources.cache
  if (cache) {
    counterOf(registry, 'velo_cache_hits_total', 'Exact cache hits', () => cache().hits)
    counterOf(registry, 'velo_cache_semantic_hits_total', 'Semantic cache hits', () => cache().semanticHits)
    counterOf(registry, 'velo_cache_misses_total', 'Cache lookups that found nothing', () => cache().misses)
    counterOf(
      registry,
      'velo_cache_bypasses_total',
      'Requests that skipped the cache (no-cache, not deterministic, route not cached)',
      () => cache().bypasses,
    )
    counterOf(registry, 'velo_cache_stores_total', 'Responses written to the cache', () => cache().stores)
    counterOf(
      registry,
      'velo_cache_evictions_total',
      'Entries dropped for size or TTL',
      () => cache().evictions,
    )
    gaugeOf(registry, 'velo_cache_bytes', 'Bytes held by the in-memory cache', () => cache().bytes)
    gaugeOf(registry, 'velo_cache_entries', 'Entries in the in-memory cache', () => cache().entries)
    counterOf(
      registry,
      'velo_cache_semantic_embed_errors_total',
      'Semantic cache lookups whose embedding call failed (each one a miss)',
      () => cache().embedErrors,
    )
    // Only with a Redis tier: a 0 would otherwise read as "Redis is down" where there is none.
    const redis = cache().redis
    if (redis !== undefined && redis !== 'off') {
      gaugeOf(registry, 'velo_cache_redis_up', '1 while the Redis tier of the cache is connected', () =>
        cache().redis === 'up' ? 1 : 0,
      )
      counterOf(
        registry,
        'velo_cache_redis_outages_total',
        'Times the Redis tier went down (velo served from memory meanwhile)',
        () => cache().redisOutages,
      )
    }
  }
  const scheduler = sources.scheduler
  if (scheduler) {
    new Counter({
      name: 'velo_queue_rejections_total',
      help: 'Requests the scheduler turned away, by reason and the HTTP status the client got',
      labelNames: ['reason', 'status'],
      registers: [registry],
      collect() {
        this.reset()
        for (const [reason, count] of Object.entries(scheduler().rejected)) {
          this.inc({ reason, status: REJECTION_STATUS[reason] ?? '' }, count)
        }
      },
    })
    counterOf(
      registry,
      'velo_model_switches_total',
      'Times a model took a loaded place from another (model affinity)',
      () => scheduler().switches,
    )
  }
  const toolCalls = sources.toolCalls
  if (toolCalls) {
    new Counter({
      name: 'velo_tool_calls_total',
      help: 'Tool calls by what repair did: repaired, recovered, invalid, retried, duplicatesDropped, coerced, enforced',
      labelNames: ['outcome'],
      registers: [registry],
      collect() {
        this.reset()
        for (const [outcome, count] of Object.entries(toolCalls())) this.inc({ outcome }, count)
      },
    })
  }
}

export function createMetrics(options: { defaults?: boolean } = {}): VeloMetrics {
  const registry = new Registry()
  if (options.defaults !== false) collectDefaultMetrics({ register: registry })
  const registers = [registry]
  return {
    registry,
    requests: new Counter({
      name: 'velo_requests_total',
      help: 'Requests served, by model, route and HTTP status',
      labelNames: ['model', 'route', 'status'],
      registers,
    }),
    duration: new Histogram({
      name: 'velo_request_duration_seconds',
      help: 'Time from request to the end of the response',
      labelNames: ['model', 'route'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers,
    }),
    ttft: new Histogram({
      name: 'velo_time_to_first_token_seconds',
      help: 'Time from request to the first byte of generated output',
      labelNames: ['model'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    tokens: new Counter({
      name: 'velo_tokens_total',
      help: 'Tokens processed, by model and kind (prompt or completion)',
      labelNames: ['model', 'kind'],
      registers,
    }),
    active: new Gauge({
      name: 'velo_active_requests',
      help: 'Requests running upstream right now',
      labelNames: ['model'],
      registers,
    }),
    queueDepth: new Gauge({
      name: 'velo_queue_depth',
      help: 'Requests waiting for a slot or for their model to load',
      labelNames: ['model'],
      registers,
    }),
    upstreamUp: new Gauge({
      name: 'velo_upstream_up',
      help: '1 when the upstream answered its last check',
      labelNames: ['upstream'],
      registers,
    }),
    upstreamBreaker: new Gauge({
      name: 'velo_upstream_breaker_state',
      help: 'Circuit breaker of the upstream: 0 closed, 1 half-open, 2 open',
      labelNames: ['upstream'],
      registers,
    }),
    upstreamOutstanding: new Gauge({
      name: 'velo_upstream_outstanding_requests',
      help: 'Requests sent to the upstream that have not finished',
      labelNames: ['upstream'],
      registers,
    }),
    modelLoaded: new Gauge({
      name: 'velo_model_loaded',
      help: '1 when the model is loaded (managed: its llama-server runs)',
      labelNames: ['model'],
      registers,
    }),
    cacheSimilarity: new Histogram({
      name: 'velo_cache_semantic_similarity',
      help: 'Similarity of the nearest cached prompt at each semantic lookup',
      labelNames: ['hit'],
      buckets: [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.925, 0.95, 0.97, 0.99, 1],
      registers,
    }),
  }
}
