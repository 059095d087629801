import { LRUCache } from 'lru-cache'
import type { CachedResponse, CacheLookup, CacheOutcome, ResponseCache } from '../pipeline-types.js'
import {
  CACHEABLE_ROUTES,
  type CacheRouteKind,
  cacheKey,
  isDeterministic,
  parseCacheControl,
  semanticParts,
} from './normalize.js'
import { type RedisStatus, RedisTier } from './redis-tier.js'
import { SemanticIndex } from './semantic-index.js'

/**
 * velo's response cache: an exact tier (in-process LRU bounded by bytes, with TTL; optionally a Redis
 * tier shared by several velo instances) and an opt-in semantic tier (an HNSW index of embedded
 * questions per namespace, pointing at exact entries).
 *
 * What is cached: chat, completion and embedding responses of deterministic requests (temperature 0
 * or a fixed seed; embeddings always), plus any request on the routes listed in
 * `cache.exact.nondeterministicRoutes`. `Cache-Control: no-cache` skips the lookup, `no-store` the
 * write. Streamed responses are stored frame by frame and replay as the same frames.
 */

/** The `cache:` section of velo.yaml after defaults (durations in ms, sizes in bytes). */
export interface CacheSettings {
  exact: {
    enabled: boolean
    maxBytes: number
    ttl: number
    /** Routes whose requests are cached even when sampling is random (opt-in). */
    nondeterministicRoutes?: string[]
  }
  semantic: {
    enabled: boolean
    /** Cosine similarity at or above which a paraphrase is a hit. */
    threshold: number
    /** The model the server embeds with (the cache itself only calls `embed`). */
    embeddingModel?: string | undefined
    maxEntries: number
    /** Models whose requests may be answered semantically; `*` for all. */
    models?: string[]
  }
  /** `redis://host:port/db`; null for memory only. */
  redis: string | null
  /** Prefix of velo's keys in Redis (several velo deployments can share one Redis). */
  redisPrefix?: string
}

export const DEFAULT_CACHE_SETTINGS: CacheSettings = {
  exact: { enabled: true, maxBytes: 256 * 1024 ** 2, ttl: 3_600_000, nondeterministicRoutes: [] },
  semantic: { enabled: false, threshold: 0.95, maxEntries: 10_000, models: ['*'] },
  redis: null,
  redisPrefix: 'velo:cache:v1:',
}

export type CacheEvent =
  | { type: 'lookup'; route: string; outcome: CacheOutcome; tier?: 'memory' | 'redis'; reason?: string }
  /** The nearest neighbour's similarity on every semantic search, hit or not (for a histogram). */
  | { type: 'similarity'; value: number; hit: boolean }
  | { type: 'store'; bytes: number }
  | { type: 'evict'; bytes: number; reason: 'size' | 'ttl' }
  | { type: 'redis'; status: RedisStatus; error: string | undefined }
  | { type: 'error'; stage: 'embed'; message: string }

export interface CacheCallbacks {
  /**
   * Embed texts with the configured embedding model (the server wires an upstream's embed endpoint).
   * Required for the semantic tier; without it the semantic tier stays off, with a warning.
   */
  embed?: (texts: string[]) => Promise<number[][]>
  /** Every lookup, store, eviction, similarity and Redis change, for metrics (map to prom-client). */
  onEvent?: (event: CacheEvent) => void
  log?: (level: 'info' | 'warn', message: string) => void
  /** Clock in ms for TTLs (tests); Date.now by default. */
  now?: () => number
}

export interface CacheStats {
  hits: number
  semanticHits: number
  misses: number
  bypasses: number
  stores: number
  evictions: number
  entries: number
  bytes: number
  redis: 'up' | 'down' | 'off'
  /** Times velo saw Redis go down. */
  redisOutages: number
  semanticEntries: number
  embedErrors: number
}

/** Rough per-entry bookkeeping cost, so that many tiny entries still count against maxBytes. */
const ENTRY_OVERHEAD = 64

function responseBytes(response: CachedResponse): number {
  let bytes = ENTRY_OVERHEAD + Buffer.byteLength(response.contentType)
  if (response.body !== undefined) bytes += Buffer.byteLength(response.body)
  for (const chunk of response.chunks ?? []) bytes += Buffer.byteLength(chunk)
  return bytes
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

export class VeloResponseCache implements ResponseCache {
  readonly settings: CacheSettings
  private readonly callbacks: CacheCallbacks
  private readonly memory: LRUCache<string, CachedResponse>
  private readonly redis: RedisTier | undefined
  private readonly semantic: SemanticIndex | undefined
  private readonly counters = {
    hits: 0,
    semanticHits: 0,
    misses: 0,
    bypasses: 0,
    stores: 0,
    evictions: 0,
    redisOutages: 0,
    embedErrors: 0,
  }

  constructor(settings: Partial<CacheSettings> = {}, callbacks: CacheCallbacks = {}) {
    this.settings = {
      ...DEFAULT_CACHE_SETTINGS,
      ...settings,
      exact: { ...DEFAULT_CACHE_SETTINGS.exact, ...settings.exact },
      semantic: { ...DEFAULT_CACHE_SETTINGS.semantic, ...settings.semantic },
    }
    this.callbacks = callbacks
    const now = callbacks.now ?? (() => Date.now())
    this.memory = new LRUCache<string, CachedResponse>({
      maxSize: Math.max(1, this.settings.exact.maxBytes),
      sizeCalculation: responseBytes,
      ttl: Math.max(1, this.settings.exact.ttl),
      perf: { now },
      // Ask the clock on every check instead of caching it for a millisecond (exact TTLs, fake clocks).
      ttlResolution: 0,
      dispose: (value, _key, reason) => {
        if (reason === 'evict' || reason === 'expire') {
          this.counters.evictions++
          this.emit({
            type: 'evict',
            bytes: responseBytes(value),
            reason: reason === 'evict' ? 'size' : 'ttl',
          })
        }
      },
    })
    if (this.settings.redis) {
      this.redis = new RedisTier({
        url: this.settings.redis,
        prefix: this.settings.redisPrefix ?? 'velo:cache:v1:',
        ttlMs: this.settings.exact.ttl,
        onStatus: (status, error) => {
          if (status === 'down') this.counters.redisOutages++
          this.emit({ type: 'redis', status, error })
        },
        log: callbacks.log,
      })
    }
    if (this.settings.semantic.enabled) {
      if (callbacks.embed) {
        this.semantic = new SemanticIndex({
          maxEntries: this.settings.semantic.maxEntries,
          ttlMs: this.settings.exact.ttl,
          now,
        })
      } else {
        callbacks.log?.(
          'warn',
          'cache: cache.semantic is enabled but no embedding function is wired; semantic cache off',
        )
      }
    }
  }

  /** Resolves when the Redis tier made its first connection attempt (immediately without Redis). */
  async ready(): Promise<void> {
    await this.redis?.ready()
  }

  async lookup(
    route: string,
    body: unknown,
    headers: Record<string, string | string[] | undefined>,
  ): Promise<CacheLookup> {
    const kind = CACHEABLE_ROUTES[route]
    if (kind === undefined || !isRecord(body)) return this.bypass(route, undefined, 'route')
    if (!this.settings.exact.enabled && !this.semantic) return this.bypass(route, undefined, 'disabled')
    if (!isDeterministic(kind, body) && !(this.settings.exact.nondeterministicRoutes ?? []).includes(route)) {
      return this.bypass(route, undefined, 'not-deterministic')
    }
    const control = parseCacheControl(headers)
    const key = cacheKey(route, body)
    if (control.noCache) return this.bypass(route, key, 'no-cache', control.noStore)

    if (this.settings.exact.enabled) {
      const fromMemory = this.memory.get(key)
      if (fromMemory) return this.hit(route, key, fromMemory, 'memory', control.noStore)
      const fromRedis = await this.redis?.get(key)
      if (fromRedis) {
        this.memory.set(key, fromRedis)
        return this.hit(route, key, fromRedis, 'redis', control.noStore)
      }
    }

    let semantic: CacheLookup['semantic']
    const parts = this.semanticAllowed(kind, body) ? semanticParts(route, body) : undefined
    if (parts && this.semantic) {
      const vector = await this.embed(parts.text)
      if (vector) {
        semantic = { namespace: parts.namespace, vector }
        const match = this.semantic.search(parts.namespace, vector)
        if (match) {
          const hit = match.similarity >= this.settings.semantic.threshold
          this.emit({ type: 'similarity', value: match.similarity, hit })
          if (hit) {
            const stored = this.memory.get(match.key) ?? (await this.redis?.get(match.key))
            if (stored) {
              this.counters.semanticHits++
              this.emit({ type: 'lookup', route, outcome: 'semantic-hit' })
              return {
                key,
                outcome: 'semantic-hit',
                response: { ...stored, similarity: match.similarity },
                noStore: true,
                semantic,
              }
            }
            // The response behind the vector was evicted: the vector is useless now.
            this.semantic.forgetKey(match.key)
          }
        }
      }
    }

    this.counters.misses++
    this.emit({ type: 'lookup', route, outcome: 'miss' })
    return { key, outcome: 'miss', response: undefined, noStore: control.noStore, semantic }
  }

  async store(lookup: CacheLookup, response: CachedResponse): Promise<void> {
    if (lookup.key === undefined || lookup.noStore) return
    if (lookup.outcome === 'hit' || lookup.outcome === 'semantic-hit') return
    if (response.status < 200 || response.status >= 300) return
    if (response.body === undefined && response.chunks === undefined) return
    const { similarity: _similarity, ...stored } = response
    const bytes = responseBytes(stored)
    if (bytes > this.settings.exact.maxBytes) return
    this.memory.set(lookup.key, stored)
    this.counters.stores++
    this.emit({ type: 'store', bytes })
    if (lookup.semantic && this.semantic)
      this.semantic.add(lookup.semantic.namespace, lookup.semantic.vector, lookup.key)
    await this.redis?.set(lookup.key, stored)
  }

  async clear(): Promise<number> {
    const local = this.memory.size
    this.memory.clear()
    this.semantic?.clear()
    const shared = (await this.redis?.clear()) ?? 0
    return Math.max(local, shared)
  }

  stats(): CacheStats {
    return {
      ...this.counters,
      entries: this.memory.size,
      bytes: this.memory.calculatedSize,
      redis: this.redis ? this.redis.status : 'off',
      semanticEntries: this.semantic?.size ?? 0,
    }
  }

  /** Disconnect from Redis (server shutdown). */
  async close(): Promise<void> {
    await this.redis?.close()
  }

  private semanticAllowed(kind: CacheRouteKind, body: Record<string, unknown>): boolean {
    if (!this.semantic || kind === 'embedding') return false
    const models = this.settings.semantic.models ?? ['*']
    const model = typeof body['model'] === 'string' ? body['model'] : ''
    return models.includes('*') || models.includes(model)
  }

  private async embed(text: string): Promise<number[] | undefined> {
    const embed = this.callbacks.embed
    if (!embed) return undefined
    try {
      const [vector] = await embed([text])
      if (!vector || vector.length === 0 || !vector.every((x) => Number.isFinite(x))) {
        throw new Error('the embedding function returned no usable vector')
      }
      return vector
    } catch (error) {
      this.counters.embedErrors++
      const message = error instanceof Error ? error.message : String(error)
      this.emit({ type: 'error', stage: 'embed', message })
      this.callbacks.log?.(
        'warn',
        `cache: embedding for the semantic cache failed (${message}); treated as a miss`,
      )
      return undefined
    }
  }

  private hit(
    route: string,
    key: string,
    response: CachedResponse,
    tier: 'memory' | 'redis',
    noStore: boolean,
  ): CacheLookup {
    this.counters.hits++
    this.emit({ type: 'lookup', route, outcome: 'hit', tier })
    return { key, outcome: 'hit', response, noStore }
  }

  private bypass(route: string, key: string | undefined, reason: string, noStore = false): CacheLookup {
    this.counters.bypasses++
    this.emit({ type: 'lookup', route, outcome: 'bypass', reason })
    return {
      key,
      outcome: 'bypass',
      response: undefined,
      noStore: key === undefined ? true : noStore,
      reason,
    }
  }

  private emit(event: CacheEvent): void {
    this.callbacks.onEvent?.(event)
  }
}

export function createResponseCache(
  settings: Partial<CacheSettings> = {},
  callbacks: CacheCallbacks = {},
): VeloResponseCache {
  return new VeloResponseCache(settings, callbacks)
}
