/**
 * velo serve's HTTP server: node:http in front of the upstreams, with the routes of design.md
 * (OpenAI, Ollama and operations), one metrics registry, and a graceful close.
 */
import { randomUUID } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Pool } from 'undici'
import type { VeloConfig } from '../core/config/schema.js'
import { requireEngine } from '../core/engine/resolve.js'
import { errorMessage, VeloError } from '../core/errors.js'
import { discoverModels } from '../core/models/discover.js'
import { INFERENCE_ROUTES, type InferenceRoute } from './bridge.js'
import { Catalog, type CatalogEntry } from './catalog.js'
import { ClientClosed, type ProxyState, type RequestContext } from './context.js'
import { familyOf, sendError } from './errors.js'
import { headerValue, parseJsonBody, readBody, sendJson, sendText } from './http.js'
import { handleInference } from './inference.js'
import { ollamaPs, ollamaShow, ollamaTags, ollamaVersion, openaiModel, openaiModels } from './listing.js'
import { type Logger, silentLogger } from './logging.js'
import { ManagedModels, type ManagedSpec } from './managed.js'
import { createMetrics, registerStageMetrics, type VeloMetrics } from './metrics.js'
import { passThroughScheduler } from './passthrough.js'
import type { ResponseCache, Scheduler } from './pipeline-types.js'
import type { AppliedProfile, ProfileLookup } from './profiles.js'
import type { ToolCallRepairer } from './repair/index.js'
import { createAutoRouter } from './scheduler/auto-router.js'
import { StatsTracker } from './stats.js'
import { buildStatus, refreshGauges } from './status.js'
import type { VeloStatus } from './status-types.js'
import { ollamaHostUrl, Upstream } from './upstreams.js'

export interface VeloServerOptions {
  /** The effective config (file, then flags). */
  config: VeloConfig
  version?: string
  logger?: Logger
  /** Admission control (issue 5); admits everything when absent. */
  scheduler?: Scheduler
  /** Response cache (issue 5); no caching when absent. */
  cache?: ResponseCache
  /** Tool-call repair and enforcement (issue 5); responses pass as they are when absent. */
  repairer?: ToolCallRepairer
  profiles?: ProfileLookup
  /**
   * The llama-server for managed models, asked at each start (it may be building); by default the
   * one config, PATH or velo's build has.
   */
  llamaServer?: () => Promise<string>
  /** Managed models besides config's and the discovered ones (`--model` files). */
  managedModels?: ManagedSpec[]
  /** With no upstream configured, use Ollama at OLLAMA_HOST (or the default) when it answers. */
  autoOllama?: boolean
  /** When nothing else is servable: the GGUF of a default managed model (velo's synthetic one). */
  defaultModel?: () => Promise<string>
  env?: NodeJS.ProcessEnv
  /** How often upstream model lists and health are refreshed. */
  refreshIntervalMs?: number
}

/** What the dashboard's keys do (the same operations POST /velo/... exposes). */
export interface ServeActions {
  unload(modelId: string): Promise<void>
  load(modelId: string): Promise<void>
  pause(modelId: string): Promise<void>
  resume(modelId: string): Promise<void>
  clearCache(): Promise<void>
}

export interface VeloServer {
  /** Discover models, probe upstreams, listen; resolves with the base URL. */
  start(): Promise<string>
  /** Stop accepting, let in-flight requests finish (bounded), stop managed processes. */
  close(): Promise<void>
  readonly url: string
  readonly metrics: VeloMetrics
  readonly managed: ManagedModels
  readonly catalog: Catalog
  readonly upstreams: Upstream[]
  status(): VeloStatus
  readonly actions: ServeActions
  /** Called when a model, upstream or counter changes (throttled by the caller if needed). */
  onChange(listener: () => void): () => void
}

const MODEL_ACTION = /^\/velo\/models\/([^/]+)\/(unload|load|pause|resume)$/

/** Paths that are routes (for the metrics label of a failed request; anything else is `unmatched`). */
const ROUTES = new Set([
  '/',
  '/health',
  '/ready',
  '/metrics',
  '/velo/status',
  '/velo/cache/clear',
  '/v1/models',
  '/v1/audio/transcriptions',
  '/v1/audio/translations',
  '/api/tags',
  '/api/ps',
  '/api/show',
  '/api/version',
  ...Object.keys(INFERENCE_ROUTES),
])

function routeLabel(path: string): string {
  if (ROUTES.has(path)) return path
  const action = MODEL_ACTION.exec(path)
  if (action) return `/velo/models/:id/${action[2]}`
  return path.startsWith('/v1/models/') ? '/v1/models/:id' : 'unmatched'
}

function idFrom(req: IncomingMessage): string {
  const given = headerValue(req, 'x-request-id')
  return given && given.length <= 128 && /^[\w.:-]+$/.test(given) ? given : randomUUID()
}

export function createVeloServer(options: VeloServerOptions): VeloServer {
  const config = options.config
  const env = options.env ?? process.env
  const logger = options.logger ?? silentLogger()
  const metrics = createMetrics()
  const listeners = new Set<() => void>()
  const notify = (): void => {
    for (const listener of listeners) listener()
  }
  const scheduler = options.scheduler ?? passThroughScheduler()
  const { cache: responseCache, repairer } = options
  const schedulerStats = scheduler.stats?.bind(scheduler)
  registerStageMetrics(metrics.registry, {
    cache: responseCache ? () => responseCache.stats() : undefined,
    scheduler: schedulerStats,
    toolCalls: repairer ? () => ({ ...repairer.stats() }) : undefined,
  })
  const upstreams = config.upstreams.map((entry) => new Upstream(entry))
  const managed = new ManagedModels({
    resolveServer:
      options.llamaServer ??
      (async () => (await requireEngine({ configured: config.engine.llamaServer, env })).serverPath),
    baseArgs: config.managed.args,
    maxLoaded: config.managed.maxLoaded,
    startTimeoutMs: config.managed.startTimeout,
    drainTimeoutMs: config.server.shutdownTimeout,
    env,
    profileFor: options.profiles
      ? async (spec) => {
          const profile = await options.profiles?.forManaged(spec)
          return profile ? { id: profile.id, args: profile.llamaServerArgs } : undefined
        }
      : undefined,
    onChange: () => {
      catalog.invalidate()
      notify()
    },
    onCapacity: (model, slots) => scheduler.setCapacity(model, slots, { slots: true }),
    log: (level, message, fields) => logger[level](fields, message),
  })
  const catalog = new Catalog(managed, upstreams, config.aliases)
  const stats = new StatsTracker()
  const upstreamProfiles = new Map<string, Promise<AppliedProfile | undefined>>()
  const profileIds = new Map<string, string | undefined>()
  let lastRefresh = 0

  const refreshUpstreams = async (): Promise<void> => {
    lastRefresh = Date.now()
    await Promise.all(upstreams.map((upstream) => upstream.refresh()))
    for (const upstream of upstreams) {
      if (upstream.slots === undefined) continue
      for (const model of upstream.models) scheduler.setCapacity(model.name, upstream.slots, { slots: true })
    }
    catalog.invalidate()
    notify()
  }

  const state: ProxyState = {
    config,
    version: options.version ?? '0.0.0',
    catalog,
    managed,
    upstreams,
    scheduler,
    scheduling: options.scheduler !== undefined,
    cache: options.cache,
    repairer: options.repairer,
    autoRouter:
      config.scheduler.auto.rules.length > 0 || config.scheduler.auto.default !== undefined
        ? createAutoRouter(config.scheduler.auto)
        : undefined,
    metrics,
    stats,
    logger,
    startedAt: new Date(),
    active: new Map(),
    waiting: new Map(),
    listen: '',
    notify,
    async resolveModel(name) {
      let entry = catalog.resolve(name)
      // A model pulled into Ollama a moment ago: look again, at most once a second.
      if (!entry && upstreams.length > 0 && Date.now() - lastRefresh > 1000) {
        await refreshUpstreams()
        entry = catalog.resolve(name)
      }
      if (!entry) throw catalog.notFound(name)
      return entry
    },
    profileFor(entry: CatalogEntry) {
      const lookup = options.profiles
      if (!lookup || entry.kind === 'managed') return Promise.resolve(undefined)
      let found = upstreamProfiles.get(entry.id)
      if (!found) {
        const digest = typeof entry.tag?.['digest'] === 'string' ? entry.tag['digest'] : undefined
        found = lookup.forUpstream(entry.upstreamModel, entry.kind, digest).catch((error: unknown) => {
          logger.warn({ model: entry.id, err: errorMessage(error) }, 'profile lookup failed')
          return undefined
        })
        void found.then((profile) => profileIds.set(entry.id, profile?.id))
        upstreamProfiles.set(entry.id, found)
      }
      return found
    },
  }

  const speech = config.speech ? new Upstream({ url: config.speech.url, kind: 'openai' }) : undefined
  const inFlight = new Set<RequestContext>()
  const statusStreams = new Set<ServerResponse>()
  let refreshTimer: NodeJS.Timeout | undefined
  let closing: Promise<void> | undefined
  let url = ''

  const actions: ServeActions = {
    unload: (id) => managed.unload(catalog.resolve(id)?.id ?? id),
    load: (id) => managed.load(catalog.resolve(id)?.id ?? id),
    pause: async (id) => {
      scheduler.pause(catalog.resolve(id)?.id ?? id)
      notify()
    },
    resume: async (id) => {
      scheduler.resume(catalog.resolve(id)?.id ?? id)
      notify()
    },
    clearCache: async () => {
      await options.cache?.clear()
      notify()
    },
  }

  const finish = (ctx: RequestContext, route: string): void => {
    const record = ctx.record
    record.durationMs = performance.now() - ctx.started
    // Label only names velo serves: a client sending random model names must not grow the metrics.
    const model = record.model && catalog.resolve(record.model) ? record.model : ''
    metrics.requests.inc({ model, route, status: String(record.status) })
    metrics.duration.observe({ model, route }, record.durationMs / 1000)
    if (record.ttftMs !== undefined) metrics.ttft.observe({ model }, record.ttftMs / 1000)
    if (record.promptTokens) metrics.tokens.inc({ model, kind: 'prompt' }, record.promptTokens)
    if (record.completionTokens) metrics.tokens.inc({ model, kind: 'completion' }, record.completionTokens)
    const line = {
      id: record.id,
      method: ctx.req.method,
      route: record.route,
      model: record.model || undefined,
      upstream: record.upstream,
      status: record.status,
      ttftMs: record.ttftMs === undefined ? undefined : Math.round(record.ttftMs),
      promptTokens: record.promptTokens,
      completionTokens: record.completionTokens,
      durationMs: Math.round(record.durationMs),
      queueMs: Math.round(record.queueMs),
      cache: record.cache,
      client: record.client,
    }
    if (ctx.important) {
      stats.record(record, ctx.startedEpoch, Date.now(), model)
      logger.info(line, 'request')
      notify()
    } else {
      logger.debug(line, 'request')
    }
  }

  const cors = (req: IncomingMessage, res: ServerResponse): void => {
    const origin = headerValue(req, 'origin')
    const allowed = config.server.cors
    if (!origin || allowed.length === 0) return
    if (allowed.includes('*') || allowed.includes(origin)) {
      res.setHeader('access-control-allow-origin', allowed.includes('*') ? '*' : origin)
      res.setHeader('vary', 'origin')
    }
  }

  const streamStatus = (req: IncomingMessage, res: ServerResponse): void => {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      'x-accel-buffering': 'no',
    })
    const send = (): void => {
      res.write(`data: ${JSON.stringify(buildStatus(state, profileIds))}\n\n`)
    }
    send()
    const timer = setInterval(send, 1000)
    statusStreams.add(res)
    const stop = (): void => {
      clearInterval(timer)
      statusStreams.delete(res)
    }
    req.on('close', stop)
    res.on('close', stop)
  }

  /** Multipart audio goes to the speech upstream as a stream (never buffered). */
  const forwardAudio = async (ctx: RequestContext, route: string): Promise<void> => {
    if (!speech) {
      throw new VeloError('VELO_NOT_FOUND', `${route} needs a speech upstream, and none is configured`, {
        suggestion: 'set speech.url in velo.yaml to a whisper.cpp or OpenAI-compatible speech server',
        status: 404,
      })
    }
    const limit = config.server.audioBodyLimit
    const declared = Number(ctx.req.headers['content-length'])
    if (Number.isFinite(declared) && declared > limit) {
      throw new VeloError('VELO_PAYLOAD_TOO_LARGE', `audio body is larger than ${limit} bytes`, {
        suggestion: 'raise server.audioBodyLimit in velo.yaml',
      })
    }
    ctx.record.upstream = speech.name
    const headers: Record<string, string> = { ...speech.authHeaders() }
    const type = headerValue(ctx.req, 'content-type')
    if (type) headers['content-type'] = type
    if (Number.isFinite(declared)) headers['content-length'] = String(declared)
    let response: Awaited<ReturnType<Pool['request']>>
    try {
      response = await speech.pool.request({
        path: speech.path(route),
        method: 'POST',
        headers,
        body: ctx.req,
        signal: ctx.abort.signal,
        headersTimeout: config.server.upstreamTimeout,
        bodyTimeout: config.server.upstreamTimeout,
      })
    } catch (error) {
      if (ctx.abort.signal.aborted) throw new ClientClosed()
      throw new VeloError(
        'VELO_UPSTREAM_UNREACHABLE',
        `speech upstream ${speech.name} is unreachable (${errorMessage(error)})`,
      )
    }
    ctx.record.status = response.statusCode
    ctx.res.writeHead(response.statusCode, {
      'content-type': String(response.headers['content-type'] ?? 'application/json'),
      'x-request-id': ctx.id,
      'x-velo-upstream': speech.name,
      'x-velo-cache': 'bypass',
      'x-velo-queue-ms': '0',
    })
    for await (const chunk of response.body as AsyncIterable<Buffer>) ctx.res.write(chunk)
    ctx.res.end()
  }

  /** Route one request; returns the route label for metrics. */
  const dispatch = async (ctx: RequestContext): Promise<string> => {
    const { req, res, path } = ctx
    const method = req.method ?? 'GET'
    const inference = INFERENCE_ROUTES[path as InferenceRoute]
    if (inference) {
      if (method !== 'POST') throw methodNotAllowed(method, path)
      ctx.important = true
      await handleInference(state, ctx, path as InferenceRoute)
      return path
    }
    const reply = (status: number, value: unknown): void => {
      ctx.record.status = status
      sendJson(res, status, value, { 'x-request-id': ctx.id })
    }
    const action = MODEL_ACTION.exec(path)
    if (action) {
      if (method !== 'POST') throw methodNotAllowed(method, path)
      const id = decodeURIComponent(action[1] ?? '')
      const verb = action[2] as 'unload' | 'load' | 'pause' | 'resume'
      const entry = await state.resolveModel(id)
      if ((verb === 'unload' || verb === 'load') && entry.kind !== 'managed') {
        throw new VeloError(
          'VELO_BAD_REQUEST',
          `${entry.id} is served by ${entry.upstream?.name}; velo loads and unloads only its managed models`,
          {
            status: 409,
          },
        )
      }
      ctx.important = true
      ctx.record.model = entry.id
      await actions[verb](entry.id)
      reply(200, {
        model: entry.id,
        action: verb,
        state: managed.status().find((m) => m.id === entry.id)?.state ?? 'ready',
      })
      return `/velo/models/:id/${verb}`
    }
    const key = `${method} ${path}`
    switch (key) {
      case 'GET /':
      case 'HEAD /':
        ctx.record.status = 200
        sendText(res, 200, 'velo is running (Ollama and OpenAI compatible)\n', 'text/plain; charset=utf-8')
        return '/'
      case 'GET /health':
        reply(200, { status: 'ok' })
        return path
      case 'GET /ready': {
        const ready = upstreams.some((upstream) => upstream.healthy) || managed.size > 0
        reply(ready ? 200 : 503, {
          ready,
          upstreams: upstreams.map((upstream) => ({
            url: upstream.url,
            healthy: upstream.healthy,
            error: upstream.lastError,
          })),
          managedModels: managed.size,
        })
        return path
      }
      case 'GET /metrics': {
        refreshGauges(state)
        ctx.record.status = 200
        sendText(res, 200, await metrics.registry.metrics(), metrics.registry.contentType)
        return path
      }
      case 'GET /velo/status': {
        ctx.record.status = 200
        if ((headerValue(req, 'accept') ?? '').includes('text/event-stream')) streamStatus(req, res)
        else reply(200, buildStatus(state, profileIds))
        return path
      }
      case 'POST /velo/cache/clear': {
        const cleared = options.cache ? await options.cache.clear() : 0
        notify()
        reply(200, { cleared })
        return path
      }
      case 'GET /v1/models':
        reply(200, openaiModels(state))
        return path
      case 'GET /api/tags':
        reply(200, await ollamaTags(state))
        return path
      case 'GET /api/ps':
        reply(200, await ollamaPs(state))
        return path
      case 'GET /api/version':
        reply(200, ollamaVersion(state))
        return path
      case 'POST /api/show': {
        const body = parseJsonBody(await readBody(req, config.server.bodyLimit))
        reply(200, await ollamaShow(state, body))
        return path
      }
      case 'POST /v1/audio/transcriptions':
      case 'POST /v1/audio/translations':
        ctx.important = true
        await forwardAudio(ctx, path)
        return path
    }
    if (method === 'GET' && path.startsWith('/v1/models/')) {
      reply(200, await openaiModel(state, decodeURIComponent(path.slice('/v1/models/'.length))))
      return '/v1/models/:id'
    }
    throw new VeloError('VELO_NOT_FOUND', `no route ${method} ${path}`, {
      suggestion: 'see docs/serve.md for the routes velo serves',
    })
  }

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const started = performance.now()
    const path = (req.url ?? '/').split('?')[0] ?? '/'
    const id = idFrom(req)
    const client = req.socket.remoteAddress ?? 'unknown'
    const ctx: RequestContext = {
      id,
      req,
      res,
      path,
      family: familyOf(path),
      started,
      startedEpoch: Date.now(),
      abort: new AbortController(),
      client,
      important: false,
      record: {
        id,
        at: new Date().toISOString(),
        model: '',
        client,
        route: path,
        status: 0,
        ttftMs: undefined,
        promptTokens: undefined,
        completionTokens: undefined,
        durationMs: 0,
        cache: 'bypass',
        upstream: undefined,
        queueMs: 0,
      },
    }
    res.on('close', () => {
      // The socket closed before the response ended: the client left; stop the upstream now.
      if (!res.writableFinished) ctx.abort.abort(new ClientClosed())
    })
    cors(req, res)
    if (req.method === 'OPTIONS') {
      res.writeHead(204, {
        'access-control-allow-methods': 'GET, POST, OPTIONS',
        'access-control-allow-headers': headerValue(req, 'access-control-request-headers') ?? '*',
        'access-control-max-age': '600',
      })
      res.end()
      return
    }
    inFlight.add(ctx)
    let route = 'unmatched'
    dispatch(ctx)
      .then((matched) => {
        route = matched
      })
      .catch((error: unknown) => {
        if (error instanceof ClientClosed || ctx.abort.signal.aborted) {
          ctx.record.status = 499
          return
        }
        const veloError = error instanceof VeloError ? error : undefined
        if (!veloError) logger.error({ id, err: errorMessage(error) }, 'unexpected error')
        route = routeLabel(path)
        ctx.record.status = res.headersSent ? ctx.record.status || 500 : (veloError?.status ?? 500)
        if (ctx.record.status >= 500) stats.error(`${path}: ${errorMessage(error)}`)
        if (!res.headersSent) {
          res.setHeader('x-request-id', id)
          if (ctx.important) {
            res.setHeader('x-velo-queue-ms', String(Math.round(ctx.record.queueMs)))
            res.setHeader('x-velo-cache', ctx.record.cache)
          }
        }
        sendError(res, ctx.family, error)
      })
      .finally(() => {
        inFlight.delete(ctx)
        if (!ctx.record.status) ctx.record.status = res.statusCode
        ctx.record.route = route === 'unmatched' ? path : route
        finish(ctx, route)
      })
  }

  const server: Server = createServer({ keepAliveTimeout: 65_000 }, handle)

  const discover = async (): Promise<void> => {
    const specs: ManagedSpec[] = Object.entries(config.managed.models).map(([id, model]) => ({
      id,
      path: model.path,
      args: model.args,
      idleTtlMs: model.idleTtl ?? config.managed.idleTtl,
      aliases: model.aliases,
      source: 'config',
    }))
    specs.push(...(options.managedModels ?? []))
    if (config.managed.modelsDirs.length > 0) {
      const found = await discoverModels({
        modelsDirs: config.managed.modelsDirs,
        env,
        usualPlaces: false,
        onProblem: (problem) => logger.warn(problem, 'cannot read a GGUF file'),
      })
      for (const model of found) {
        specs.push({
          id: model.id,
          path: model.path,
          args: [],
          idleTtlMs: config.managed.idleTtl,
          aliases: [],
          source: 'models-dir',
        })
      }
    }
    for (const spec of specs) managed.add(spec)
  }

  return {
    get url() {
      return url
    },
    metrics,
    managed,
    catalog,
    upstreams,
    actions,
    status: () => buildStatus(state, profileIds),
    onChange(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
    async start() {
      await discover()
      if (options.autoOllama && upstreams.length === 0) {
        const ollama = new Upstream({ url: ollamaHostUrl(env), kind: 'ollama', name: 'ollama' })
        await ollama.refresh()
        if (ollama.healthy) upstreams.push(ollama)
        else await ollama.close()
      }
      await refreshUpstreams()
      if (catalog.entries().length === 0 && options.defaultModel) {
        const path = await options.defaultModel()
        managed.add({
          id: 'velo-tiny',
          path,
          args: [],
          idleTtlMs: config.managed.idleTtl,
          aliases: [],
          source: 'default',
        })
        catalog.invalidate()
      }
      await new Promise<void>((resolve, reject) => {
        server.once('error', (error: NodeJS.ErrnoException) => {
          reject(
            error.code === 'EADDRINUSE'
              ? new VeloError(
                  'VELO_BAD_REQUEST',
                  `port ${config.server.port} on ${config.server.host} is in use`,
                  {
                    suggestion: 'pick another with --port, or stop what listens there',
                    exitCode: 2,
                  },
                )
              : error,
          )
        })
        server.listen(config.server.port, config.server.host, () => resolve())
      })
      const address = server.address() as AddressInfo
      const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
      url = `http://${host}:${address.port}`
      state.listen = url
      const interval = options.refreshIntervalMs ?? 10_000
      if (upstreams.length > 0 && interval > 0) {
        refreshTimer = setInterval(() => void refreshUpstreams(), interval)
        refreshTimer.unref()
      }
      return url
    },
    close() {
      closing ??= (async () => {
        if (refreshTimer) clearInterval(refreshTimer)
        const closed = new Promise<void>((resolve) => server.close(() => resolve()))
        server.closeIdleConnections()
        for (const res of statusStreams) res.end()
        const deadline = Date.now() + config.server.shutdownTimeout
        while (inFlight.size > 0 && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 50))
          server.closeIdleConnections()
        }
        // What is still queued will not get a place now: the scheduler answers it 503.
        scheduler.close?.()
        for (const ctx of inFlight) ctx.abort.abort(new ClientClosed())
        server.closeAllConnections()
        await closed
        await Promise.all([managed.stopAll(), options.cache?.close?.()])
        await Promise.all([...upstreams, ...(speech ? [speech] : [])].map((upstream) => upstream.close()))
      })()
      return closing
    },
  }
}

function methodNotAllowed(method: string, path: string): VeloError {
  return new VeloError('VELO_BAD_REQUEST', `${path} does not take ${method}`, { status: 405 })
}
