/**
 * velo serve's optimizing stages built from the config: the scheduler (queues, fairness, model and
 * prefix affinity), the response cache (exact, Redis, semantic) and the tool-call repairer.
 */
import { request } from 'undici'
import type { VeloConfig } from '../core/config/schema.js'
import { errorMessage } from '../core/errors.js'
import { internalAuthorization } from './auth/internal.js'
import { createResponseCache, type VeloResponseCache } from './cache/index.js'
import type { Logger } from './logging.js'
import { ToolCallRepairer } from './repair/index.js'
import { createScheduler, type VeloScheduler } from './scheduler/index.js'

export interface Pipeline {
  scheduler: VeloScheduler
  cache: VeloResponseCache
  repairer: ToolCallRepairer
}

export interface PipelineOptions {
  logger: Logger
  /**
   * Where velo itself listens, once it does: the semantic cache embeds through velo's own
   * /v1/embeddings, so the embedding model can be any model velo serves (managed or upstream). The
   * call carries this process's internal token (auth/internal.ts), so it passes `auth.keys`.
   */
  selfUrl: () => string
  /** The semantic cache's nearest-neighbour similarity at each lookup (for the metrics histogram). */
  onSimilarity?: (value: number, hit: boolean) => void
}

/** The group name of velo's managed llama-servers in the scheduler (model affinity). */
export const MANAGED_GROUP = 'managed'

/** An embed function over velo's own /v1/embeddings with the configured embedding model. */
function embedThrough(model: string, selfUrl: () => string): (texts: string[]) => Promise<number[][]> {
  return async (texts) => {
    const base = selfUrl()
    if (!base) throw new Error('velo is not listening yet')
    const response = await request(`${base}/v1/embeddings`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        // no-store: the semantic cache's own embedding calls should not fill the exact cache.
        'cache-control': 'no-store',
        authorization: internalAuthorization(),
      },
      body: JSON.stringify({ model, input: texts }),
      headersTimeout: 30_000,
      bodyTimeout: 30_000,
    })
    const text = await response.body.text()
    if (response.statusCode !== 200) {
      throw new Error(`embedding model ${model} answered ${response.statusCode}: ${text.slice(0, 200)}`)
    }
    const parsed = JSON.parse(text) as { data?: { embedding?: unknown; index?: unknown }[] }
    const rows = [...(parsed.data ?? [])].sort((a, b) => Number(a.index ?? 0) - Number(b.index ?? 0))
    return rows.map((row) =>
      Array.isArray(row.embedding) ? row.embedding.filter((x): x is number => typeof x === 'number') : [],
    )
  }
}

export function createPipeline(config: VeloConfig, options: PipelineOptions): Pipeline {
  const { logger } = options
  const log = (level: 'info' | 'warn', message: string): void => logger[level](message)
  const scheduler = createScheduler(config.scheduler, {
    onSwitch: (event) => logger.info(event, `model switch: ${event.model} takes a place (${event.reason})`),
    log,
  })
  const embeddingModel = config.cache.semantic.embeddingModel
  if (config.cache.semantic.enabled && !embeddingModel) {
    logger.warn('cache.semantic is enabled without cache.semantic.embeddingModel: semantic cache off')
  }
  const cache = createResponseCache(config.cache, {
    embed: embeddingModel ? embedThrough(embeddingModel, options.selfUrl) : undefined,
    onEvent: (event) => {
      if (event.type === 'similarity') options.onSimilarity?.(event.value, event.hit)
      if (event.type === 'redis') {
        logger[event.status === 'down' ? 'warn' : 'info'](
          { err: event.error },
          `cache: Redis is ${event.status}${event.status === 'down' ? ', serving from memory' : ''}`,
        )
      }
    },
    log,
  })
  const repairer = new ToolCallRepairer(config.toolCalls, { log })
  cache.ready().catch((error: unknown) => logger.warn({ err: errorMessage(error) }, 'cache: Redis not ready'))
  return { scheduler, cache, repairer }
}
