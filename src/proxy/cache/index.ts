/** The cache stage of velo serve: exact (memory + Redis) and semantic (HNSW) response caching. */
export { Hnsw, type HnswOptions, type HnswResult } from './hnsw.js'
export {
  CACHEABLE_ROUTES,
  type CacheControl,
  type CacheRouteKind,
  cacheKey,
  canonicalJson,
  isDeterministic,
  parseCacheControl,
  type SemanticParts,
  semanticParts,
} from './normalize.js'
export { type RedisStatus, RedisTier, type RedisTierOptions } from './redis-tier.js'
export {
  type CacheCallbacks,
  type CacheEvent,
  type CacheSettings,
  type CacheStats,
  createResponseCache,
  DEFAULT_CACHE_SETTINGS,
  VeloResponseCache,
} from './response-cache.js'
export { SemanticIndex, type SemanticIndexOptions, type SemanticMatch } from './semantic-index.js'
