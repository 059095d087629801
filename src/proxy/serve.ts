/**
 * Putting `velo serve` together: config plus flags, the engine (built on first use when missing),
 * the zero-config defaults (Ollama when it answers, GGUF files under --models-dir, velo's synthetic
 * model when there is nothing else), then the server.
 */
import { existsSync } from 'node:fs'
import { basename, resolve } from 'node:path'
import type { VeloConfig } from '../core/config/schema.js'
import { parseDuration } from '../core/config/units.js'
import { installEngine } from '../core/engine/install.js'
import { resolveEngine } from '../core/engine/resolve.js'
import { VeloError } from '../core/errors.js'
import { ensureSynthModel } from '../core/models/synth.js'
import { expandHome } from '../core/paths.js'
import type { Logger } from './logging.js'
import type { ManagedSpec } from './managed.js'
import type { VeloMetrics } from './metrics.js'
import { createPipeline, MANAGED_GROUP } from './pipeline.js'
import type { ResponseCache, Scheduler } from './pipeline-types.js'
import type { ProfileLookup } from './profiles.js'
import { createVeloServer, type VeloServer } from './server.js'

/** The command-line flags of `velo serve` that override the config file. */
export interface ServeFlags {
  port?: number | undefined
  host?: string | undefined
  upstream?: string[] | undefined
  modelsDir?: string[] | undefined
  model?: string[] | undefined
  maxLoaded?: number | undefined
  idleTtl?: string | undefined
  logFormat?: 'json' | 'pretty' | undefined
}

/** 127.0.0.1, ::1, localhost: addresses only this machine can reach. */
export function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase()
  return (
    bare === 'localhost' || bare === '::1' || /^127(\.\d{1,3}){3}$/.test(bare) || bare === '::ffff:127.0.0.1'
  )
}

/**
 * Listening where other machines can reach velo, with no key, lets anyone on the network use the
 * models (and unload them): refuse unless the user said so with --insecure-no-auth.
 */
export function checkExposure(config: VeloConfig, insecureNoAuth: boolean): void {
  if (insecureNoAuth || config.auth.keys.length > 0 || isLoopback(config.server.host)) return
  throw new VeloError(
    'VELO_CONFIG_INVALID',
    `refusing to listen on ${config.server.host} without API keys: anyone who can reach this machine could use its models`,
    {
      suggestion:
        'add auth.keys to velo.yaml (velo keys create makes one), listen on 127.0.0.1, or pass --insecure-no-auth',
      exitCode: 2,
    },
  )
}

/** Flags over the file: scalars replace, `--upstream` and `--models-dir` add entries. */
export function applyServeFlags(config: VeloConfig, flags: ServeFlags): VeloConfig {
  const upstreams = [...config.upstreams]
  for (const url of flags.upstream ?? []) {
    if (!URL.canParse(url)) {
      throw new VeloError(
        'VELO_CONFIG_INVALID',
        `--upstream: expected a URL like http://127.0.0.1:11434, got "${url}"`,
        {
          exitCode: 2,
        },
      )
    }
    upstreams.push({ url })
  }
  let idleTtl = config.managed.idleTtl
  if (flags.idleTtl !== undefined) {
    const parsed = parseDuration(flags.idleTtl)
    if (parsed === undefined) {
      throw new VeloError(
        'VELO_CONFIG_INVALID',
        `--idle-ttl: expected a duration like 30s or 10m, got "${flags.idleTtl}"`,
        {
          exitCode: 2,
        },
      )
    }
    idleTtl = parsed
  }
  return {
    ...config,
    server: {
      ...config.server,
      port: flags.port ?? config.server.port,
      host: flags.host ?? config.server.host,
      logFormat: flags.logFormat ?? config.server.logFormat,
    },
    upstreams,
    managed: {
      ...config.managed,
      modelsDirs: [...config.managed.modelsDirs, ...(flags.modelsDir ?? [])],
      maxLoaded: flags.maxLoaded ?? config.managed.maxLoaded,
      idleTtl,
    },
  }
}

/** `--model FILE.gguf`: each file a managed model named after it. */
export function modelFileSpecs(paths: string[], config: VeloConfig): ManagedSpec[] {
  return paths.map((given) => {
    const path = resolve(expandHome(given))
    if (!existsSync(path)) {
      throw new VeloError('VELO_MODEL_NOT_FOUND', `--model: ${given} does not exist`, {
        suggestion: 'pass the path of a .gguf file',
        exitCode: 2,
      })
    }
    return {
      id: basename(path).replace(/\.gguf$/i, ''),
      path,
      args: [],
      idleTtlMs: config.managed.idleTtl,
      aliases: [],
      source: 'flag' as const,
    }
  })
}

export interface ServeOptions {
  config: VeloConfig
  /** Listen on a non-loopback address without keys (`--insecure-no-auth`). */
  insecureNoAuth?: boolean
  /** GGUF files from `--model`. */
  modelFiles?: string[]
  version: string
  logger: Logger
  env?: NodeJS.ProcessEnv
  /** Use Ollama at OLLAMA_HOST when no upstream is configured (default true). */
  autoOllama?: boolean
  /** Serve velo's synthetic model when nothing else is servable (default true). */
  defaultModel?: boolean
  /** Replace the scheduler built from `config.scheduler` (tests). */
  scheduler?: Scheduler
  /** Replace the response cache built from `config.cache` (tests). */
  cache?: ResponseCache
  profiles?: ProfileLookup
  /** Progress of a first-time engine build. */
  onStatus?: (message: string, percent?: number) => void
}

/** Start velo serve; resolves once it listens. The engine builds in the background when missing. */
export async function startServe(options: ServeOptions): Promise<VeloServer> {
  const env = options.env ?? process.env
  const { config } = options
  checkExposure(config, options.insecureNoAuth ?? false)
  const status = options.onStatus ?? (() => {})
  let engine: Promise<string> | undefined
  const llamaServer = (): Promise<string> => {
    engine ??= (async () => {
      const found = await resolveEngine({ configured: config.engine.llamaServer, env })
      if (found) return found.serverPath
      options.logger.info('no llama-server yet: building velo’s engine (minutes, once)')
      const built = await installEngine({
        env,
        onProgress: ({ message, percent }) => status(message, percent),
      })
      options.logger.info({ serverPath: built.serverPath }, 'engine ready')
      return built.serverPath
    })()
    engine.catch(() => {
      engine = undefined
    })
    return engine
  }
  let selfUrl = ''
  // The server (and its metrics registry) is made after the pipeline; lookups start only once it listens.
  let similarity: VeloMetrics['cacheSimilarity'] | undefined
  const pipeline = createPipeline(config, {
    logger: options.logger,
    selfUrl: () => selfUrl,
    onSimilarity: (value, hit) => similarity?.observe({ hit: String(hit) }, value),
  })
  const server = createVeloServer({
    config,
    version: options.version,
    logger: options.logger,
    scheduler: options.scheduler ?? pipeline.scheduler,
    cache: options.cache ?? pipeline.cache,
    repairer: pipeline.repairer,
    profiles: options.profiles,
    llamaServer,
    managedModels: modelFileSpecs(options.modelFiles ?? [], config),
    autoOllama: options.autoOllama ?? true,
    defaultModel: options.defaultModel === false ? undefined : () => ensureSynthModel('tiny', env),
    env,
  })
  // A cache given by the caller replaces the configured one: drop the unused one's Redis connection.
  if (options.cache) void pipeline.cache.close()
  similarity = server.metrics.cacheSimilarity
  selfUrl = await server.start()
  // Model affinity: managed models share the machine's maxLoaded places; the scheduler admits only
  // the models holding a place and switches when one goes idle or another has waited its bound, so
  // the process manager (which loads on the first admitted request and evicts the least recently
  // used) does not swap models on every request.
  const managedIds = server.managed.specs().map((spec) => spec.id)
  if (
    !options.scheduler &&
    config.scheduler.affinity.enabled &&
    managedIds.length > config.managed.maxLoaded
  ) {
    pipeline.scheduler.defineGroup(MANAGED_GROUP, { models: managedIds, maxLoaded: config.managed.maxLoaded })
  }
  // Managed models need the engine: find (or start building) it now rather than on the first request.
  if (server.managed.size > 0) {
    llamaServer().catch((error: unknown) => {
      options.logger.error({ err: error instanceof Error ? error.message : String(error) }, 'no llama-server')
    })
  }
  return server
}
