/**
 * velo serve's HTTP server: node:http in front of the upstreams, with the routes of design.md
 * (OpenAI, Ollama and operations), one metrics registry, and a graceful close.
 */
import { randomUUID } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Transform } from 'node:stream'
import type { Pool } from 'undici'
import type { ManagedModelConfig, VeloConfig } from '../core/config/schema.js'
import { requireEngine } from '../core/engine/resolve.js'
import { errorMessage, VeloError } from '../core/errors.js'
import { discoverModels } from '../core/models/discover.js'
import { Auth } from './auth/index.js'
import { bodyLimitFor } from './body-limits.js'
import { INFERENCE_ROUTES, type InferenceRoute } from './bridge.js'
import { Catalog, type CatalogEntry } from './catalog.js'
import { ClientClosed, type ProxyState, type RequestContext } from './context.js'
import { familyOf, sendError } from './errors.js'
import { decodePathSegment, headerValue, parseJsonBody, readBody, sendJson, sendText } from './http.js'
import { handleInference } from './inference.js'
import { ollamaPs, ollamaShow, ollamaTags, ollamaVersion, openaiModel, openaiModels } from './listing.js'
import { type Logger, logInfo, silentLogger } from './logging.js'
import { ManagedModels, type ManagedSpec } from './managed.js'
import { createMetrics, registerStageMetrics, type VeloMetrics } from './metrics.js'
import { passThroughScheduler } from './passthrough.js'
import type { ResponseCache, Scheduler } from './pipeline-types.js'
import type { AppliedProfile, ProfileLookup } from './profiles.js'
import type { ReloadResult } from './reload.js'
import type { ToolCallRepairer } from './repair/index.js'
import { createAutoRouter } from './scheduler/auto-router.js'
import { StatsTracker } from './stats.js'
import { buildStatus, refreshGauges } from './status.js'
import type { VeloStatus } from './status-types.js'
import { modelCapacity, ollamaHostUrl, Upstream } from './upstreams.js'

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
  /**
   * Apply a new config to new requests (in-flight ones finish on the one they started with); says
   * what took effect and what needs a restart.
   */
  reload(next: VeloConfig): Promise<ReloadResult>
  /** Called when a model, upstream or counter changes (throttled by the caller if needed). */
  onChange(listener: () => void): () => void
}

/** On every answer: velo's API is JSON for programs, never a page to frame, sniff or refer from. */
const SECURITY_HEADERS: [string, string][] = [
  ['x-content-type-options', 'nosniff'],
  ['x-frame-options', 'DENY'],
  ['referrer-policy', 'no-referrer'],
  ['content-security-policy', "default-src 'none'; frame-ancestors 'none'"],
]

/** Response headers a browser client of an allowed origin may read. */
const EXPOSED_HEADERS =
  'x-request-id, x-velo-cache, x-velo-similarity, x-velo-queue-ms, x-velo-upstream, x-velo-routed-model, retry-after, x-ratelimit-limit-requests, x-ratelimit-remaining-requests, x-ratelimit-reset-requests, x-ratelimit-limit-tokens, x-ratelimit-remaining-tokens, x-ratelimit-reset-tokens'

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
  const authLog = (level: 'info' | 'warn', message: string): void => logger[level](message)
  // Upstreams by their config entry, so a reload keeps the ones it did not change (and their pools).
  const upstreamKey = (entry: VeloConfig['upstreams'][number]): string => JSON.stringify(entry)
  const configured = new Map(config.upstreams.map((entry) => [upstreamKey(entry), new Upstream(entry)]))
  // The local Ollama velo found on its own when no upstream is configured.
  let detectedOllama: Upstream | undefined
  const managed = new ManagedModels({
    resolveServer:
      options.llamaServer ??
      (async () => (await requireEngine({ configured: config.engine.llamaServer, env })).serverPath),
    baseArgs: config.managed.args,
    maxLoaded: config.managed.maxLoaded,
    startTimeoutMs: config.managed.startTimeout,
    backoff: { initialMs: config.managed.restartBackoff, maxMs: config.managed.restartBackoffMax },
    drainTimeoutMs: config.server.shutdownTimeout,
    env,
    profileFor: options.profiles
      ? async (spec) => {
          const profile = await options.profiles?.forManaged(spec)
          return profile ? { id: profile.id, args: profile.llamaServerArgs } : undefined
        }
      : undefined,
    onChange: () => {
      state.catalog.invalidate()
      notify()
    },
    onCapacity: (model, slots) => scheduler.setCapacity(model, slots, { slots: true }),
    log: (level, message, fields) => logger[level](fields, message),
  })
  const stats = new StatsTracker()
  const upstreamProfiles = new Map<string, Promise<AppliedProfile | undefined>>()
  const profileIds = new Map<string, string | undefined>()
  let lastRefresh = 0

  const refreshUpstreams = async (): Promise<void> => {
    lastRefresh = Date.now()
    const { upstreams, catalog } = state
    await Promise.all(upstreams.map((upstream) => upstream.refresh()))
    catalog.invalidate()
    // A model served by several upstreams can run as many requests at once as all their slots.
    for (const entry of catalog.entries()) {
      if (entry.kind === 'managed') continue
      const capacity = modelCapacity(entry.upstreams)
      if (capacity) scheduler.setCapacity(entry.id, capacity.slots, { slots: capacity.pinSlots })
      // An Ollama that does not say its parallelism: a profile for the model may (velo optimize's).
      const unsized = entry.upstreams.some((upstream) => upstream.parallel === undefined)
      if (options.profiles && entry.kind === 'ollama' && unsized) {
        void state.profileFor(entry).then((profile) => {
          if (profile?.parallel === undefined) return
          const sized = modelCapacity(entry.upstreams, profile.parallel)
          if (!sized) return
          scheduler.setCapacity(entry.id, sized.slots, { slots: sized.pinSlots })
          notify()
        })
      }
    }
    notify()
  }

  const startedAt = new Date()
  const active = new Map<string, number>()
  const waiting = new Map<string, number>()

  /**
   * The config-dependent parts as one snapshot: a request keeps the snapshot it arrived with to its
   * end, so a reload (which makes a new one) never changes a request half-way.
   */
  const snapshot = (next: VeloConfig, auth: Auth, upstreams: Upstream[]): ProxyState => {
    const catalog = new Catalog(managed, upstreams, next.aliases)
    const snap: ProxyState = {
      config: next,
      auth,
      version: options.version ?? '0.0.0',
      catalog,
      managed,
      upstreams,
      scheduler,
      scheduling: options.scheduler !== undefined,
      cache: options.cache,
      repairer: options.repairer,
      autoRouter:
        next.scheduler.auto.rules.length > 0 || next.scheduler.auto.default !== undefined
          ? createAutoRouter(next.scheduler.auto)
          : undefined,
      metrics,
      stats,
      logger,
      startedAt,
      active,
      waiting,
      listen: url,
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
    return snap
  }

  let url = ''
  let state = snapshot(config, new Auth(config, { log: authLog }), [...configured.values()])

  const speech = config.speech ? new Upstream({ url: config.speech.url, kind: 'openai' }) : undefined
  const inFlight = new Set<RequestContext>()
  const statusStreams = new Set<ServerResponse>()
  let refreshTimer: NodeJS.Timeout | undefined
  let closing: Promise<void> | undefined

  const actions: ServeActions = {
    unload: (id) => managed.unload(state.catalog.resolve(id)?.id ?? id),
    load: (id) => managed.load(state.catalog.resolve(id)?.id ?? id),
    pause: async (id) => {
      scheduler.pause(state.catalog.resolve(id)?.id ?? id)
      notify()
    },
    resume: async (id) => {
      scheduler.resume(state.catalog.resolve(id)?.id ?? id)
      notify()
    },
    clearCache: async () => {
      await options.cache?.clear()
      notify()
    },
  }

  // The labelled series of each (model, route, status), looked up once, so no label objects are
  // built per request (prom-client still hashes the labels on each inc and observe). Bounded: model
  // is '' or a name velo serves, route one of its routes.
  interface RequestSeries {
    count: { inc(): void }
    duration: { observe(value: number): void }
    ttft: { observe(value: number): void }
    promptTokens: { inc(value: number): void }
    completionTokens: { inc(value: number): void }
  }
  const series = new Map<string, RequestSeries>()
  const requestSeries = (model: string, route: string, status: number): RequestSeries => {
    const key = `${model}\u0000${route}\u0000${status}`
    let found = series.get(key)
    if (!found) {
      found = {
        count: metrics.requests.labels({ model, route, status: String(status) }),
        duration: metrics.duration.labels({ model, route }),
        ttft: metrics.ttft.labels({ model }),
        promptTokens: metrics.tokens.labels({ model, kind: 'prompt' }),
        completionTokens: metrics.tokens.labels({ model, kind: 'completion' }),
      }
      series.set(key, found)
    }
    return found
  }

  const finish = (ctx: RequestContext, route: string, state: ProxyState): void => {
    const record = ctx.record
    record.durationMs = performance.now() - ctx.started
    // Label only names velo serves: a client sending random model names must not grow the metrics.
    const model = record.model && state.catalog.resolve(record.model) ? record.model : ''
    const labelled = requestSeries(model, route, record.status)
    labelled.count.inc()
    labelled.duration.observe(record.durationMs / 1000)
    if (record.ttftMs !== undefined) labelled.ttft.observe(record.ttftMs / 1000)
    if (record.promptTokens) labelled.promptTokens.inc(record.promptTokens)
    if (record.completionTokens) labelled.completionTokens.inc(record.completionTokens)
    if (ctx.principal?.tpm !== undefined) {
      state.auth
        .charge(ctx.principal, (record.promptTokens ?? 0) + (record.completionTokens ?? 0))
        .catch((error: unknown) => logger.warn({ err: errorMessage(error) }, 'rate-limit charge failed'))
    }
    // Most requests outside inference log at debug, which is off by default: skip building the line.
    if (!ctx.important && !logger.isLevelEnabled('debug')) return
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
      logInfo(logger, line, 'request')
      notify()
    } else {
      logger.debug(line, 'request')
    }
  }

  /** CORS for the listed origins only (none by default); true when the request's origin is allowed. */
  const cors = (req: IncomingMessage, res: ServerResponse): boolean => {
    const origin = headerValue(req, 'origin')
    const allowed = state.config.server.cors
    if (!origin || allowed.length === 0) return false
    if (!allowed.includes('*') && !allowed.includes(origin)) return false
    res.setHeader('access-control-allow-origin', allowed.includes('*') ? '*' : origin)
    res.setHeader('access-control-expose-headers', EXPOSED_HEADERS)
    res.setHeader('vary', 'origin')
    return true
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
  const forwardAudio = async (ctx: RequestContext, route: string, state: ProxyState): Promise<void> => {
    if (!speech) {
      throw new VeloError('VELO_NOT_FOUND', `${route} needs a speech upstream, and none is configured`, {
        suggestion: 'set speech.url in velo.yaml to a whisper.cpp or OpenAI-compatible speech server',
        status: 404,
      })
    }
    const limit = bodyLimitFor(state.config, route)
    const declared = Number(ctx.req.headers['content-length'])
    if (Number.isFinite(declared) && declared > limit) throw audioTooLarge(limit)
    // A chunked upload declares no length: count its bytes on the way and cut it at the limit.
    let overLimit = false
    const body = Number.isFinite(declared)
      ? ctx.req
      : limitBody(ctx.req, limit, () => {
          overLimit = true
        })
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
        body,
        signal: ctx.abort.signal,
        headersTimeout: state.config.server.upstreamTimeout,
        bodyTimeout: state.config.server.upstreamTimeout,
      })
    } catch (error) {
      if (ctx.abort.signal.aborted) throw new ClientClosed()
      if (overLimit) {
        // The rest of the upload is not read: close the connection after the answer.
        ctx.res.setHeader('connection', 'close')
        throw audioTooLarge(limit)
      }
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

  /** Take one from the key's rate-limit buckets; 429 with Retry-After when they are empty. */
  const admitKey = async (ctx: RequestContext, state: ProxyState): Promise<void> => {
    const admitted = await state.auth.admit(ctx.principal)
    if (!admitted) return
    for (const [name, value] of Object.entries(admitted.headers)) ctx.res.setHeader(name, value)
    if (admitted.refused) throw admitted.refused
  }

  /** Route one request; returns the route label for metrics. */
  const dispatch = async (ctx: RequestContext, state: ProxyState): Promise<string> => {
    const { req, res, path } = ctx
    const method = req.method ?? 'GET'
    ctx.principal = state.auth.authenticate(
      path,
      headerValue(req, 'authorization'),
      headerValue(req, 'x-api-key'),
    )
    const inference = INFERENCE_ROUTES[path as InferenceRoute]
    if (inference) {
      if (method !== 'POST') throw methodNotAllowed(method, path)
      ctx.important = true
      await admitKey(ctx, state)
      await handleInference(state, ctx, path as InferenceRoute)
      return path
    }
    const reply = (status: number, value: unknown): void => {
      ctx.record.status = status
      sendJson(res, status, value, { 'x-request-id': ctx.id })
    }
    const action = MODEL_ACTION.exec(path)
    if (action) {
      // Admin only (authenticate checked the scope for /velo/*).
      if (method !== 'POST') throw methodNotAllowed(method, path)
      const id = decodePathSegment(action[1] ?? '', 'model')
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
        const ready = state.upstreams.some((upstream) => upstream.healthy) || managed.size > 0
        reply(ready ? 200 : 503, {
          ready,
          upstreams: state.upstreams.map((upstream) => ({
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
        reply(200, openaiModels(state, ctx.principal?.allows))
        return path
      case 'GET /api/tags':
        reply(200, await ollamaTags(state, ctx.principal?.allows))
        return path
      case 'GET /api/ps':
        reply(200, await ollamaPs(state))
        return path
      case 'GET /api/version':
        reply(200, ollamaVersion(state))
        return path
      case 'POST /api/show': {
        const body = parseJsonBody(await readBody(req, bodyLimitFor(state.config, path)))
        reply(200, await ollamaShow(state, body))
        return path
      }
      case 'POST /v1/audio/transcriptions':
      case 'POST /v1/audio/translations':
        ctx.important = true
        await admitKey(ctx, state)
        await forwardAudio(ctx, path, state)
        return path
    }
    if (method === 'GET' && path.startsWith('/v1/models/')) {
      reply(200, await openaiModel(state, decodePathSegment(path.slice('/v1/models/'.length), 'model')))
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
    for (const [name, value] of SECURITY_HEADERS) res.setHeader(name, value)
    const allowedOrigin = cors(req, res)
    if (req.method === 'OPTIONS') {
      // A preflight carries no key; it tells the browser only whether the origin may call.
      res.writeHead(
        204,
        allowedOrigin
          ? {
              'access-control-allow-methods': 'GET, POST, OPTIONS',
              'access-control-allow-headers':
                headerValue(req, 'access-control-request-headers') ?? 'authorization, content-type',
              'access-control-max-age': '600',
            }
          : {},
      )
      res.end()
      return
    }
    inFlight.add(ctx)
    let route = 'unmatched'
    // The config snapshot this request lives with to its end, whatever a reload does meanwhile.
    const current = state
    dispatch(ctx, current)
      .then((matched) => {
        route = matched
      })
      .catch((error: unknown) => {
        route = routeLabel(path)
        if (error instanceof ClientClosed || ctx.abort.signal.aborted) {
          ctx.record.status = 499
          return
        }
        const veloError = error instanceof VeloError ? error : undefined
        if (!veloError) logger.error({ id, err: errorMessage(error) }, 'unexpected error')
        ctx.record.status = res.headersSent ? ctx.record.status || 500 : (veloError?.status ?? 500)
        if (ctx.record.status >= 500) stats.error(`${path}: ${errorMessage(error)}`)
        if (!res.headersSent) {
          res.setHeader('x-request-id', id)
          if (veloError?.status === 401) res.setHeader('www-authenticate', 'Bearer realm="velo"')
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
        finish(ctx, route, current)
      })
  }

  const server: Server = createServer({ keepAliveTimeout: 65_000 }, handle)

  /** Upstreams a reload removed: closed once their in-flight requests end (undici waits for them). */
  const retired = new Set<Upstream>()

  const reload = async (next: VeloConfig): Promise<ReloadResult> => {
    const previous = state.config
    const differs = (a: unknown, b: unknown): boolean => JSON.stringify(a) !== JSON.stringify(b)
    const applied: string[] = []
    const needsRestart: string[] = []
    for (const key of ['host', 'port', 'logFormat'] as const) {
      if (previous.server[key] !== next.server[key]) needsRestart.push(`server.${key}`)
    }
    for (const key of [
      'bodyLimit',
      'audioBodyLimit',
      'routeBodyLimits',
      'cors',
      'upstreamTimeout',
      'shutdownTimeout',
    ] as const) {
      if (differs(previous.server[key], next.server[key])) applied.push(`server.${key}`)
    }
    for (const section of ['engine', 'cache', 'toolCalls', 'speech'] as const) {
      if (differs(previous[section], next[section])) needsRestart.push(section)
    }
    const { priorities, weights, auto, ...schedulerRest } = next.scheduler
    const { priorities: p0, weights: w0, auto: a0, ...previousSchedulerRest } = previous.scheduler
    if (differs(schedulerRest, previousSchedulerRest)) needsRestart.push('scheduler')
    if (differs(priorities, p0)) applied.push('scheduler.priorities')
    if (differs(weights, w0)) {
      scheduler.setWeights?.(weights)
      applied.push('scheduler.weights')
    }
    if (differs(auto, a0)) applied.push('scheduler.auto')
    const { models: managedModels, ...managedRest } = next.managed
    const { models: previousModels, ...previousManagedRest } = previous.managed
    if (differs(managedRest, previousManagedRest)) needsRestart.push('managed')

    // Managed models: new entries are served from now on; a changed or removed one stops once its
    // requests are done (like an unload), then starts from its new entry on the next request.
    const added: ManagedSpec[] = []
    const replaced: [string, ManagedSpec | undefined][] = []
    for (const [id, model] of Object.entries(managedModels)) {
      const before = previousModels[id]
      if (before === undefined && !managed.has(id)) added.push(managedSpec(id, model, next))
      else if (before !== undefined && differs(before, model))
        replaced.push([id, managedSpec(id, model, next)])
    }
    for (const id of Object.keys(previousModels)) {
      if (!(id in managedModels)) replaced.push([id, undefined])
    }
    if (added.length > 0 || replaced.length > 0) applied.push('managed.models')

    // Upstreams: unchanged entries keep their Upstream (pool, health, model list).
    let upstreams = state.upstreams
    if (differs(previous.upstreams, next.upstreams)) {
      const nextKeys = new Set(next.upstreams.map(upstreamKey))
      for (const [key, upstream] of configured) {
        if (nextKeys.has(key)) continue
        configured.delete(key)
        retired.add(upstream)
        void upstream.retire().then(() => retired.delete(upstream))
      }
      for (const entry of next.upstreams) {
        const key = upstreamKey(entry)
        if (!configured.has(key)) configured.set(key, new Upstream(entry))
      }
      upstreams = [...configured.values()]
      applied.push('upstreams')
    }
    if (upstreams.length === 0 && detectedOllama) upstreams = [detectedOllama]
    if (differs(previous.aliases, next.aliases)) applied.push('aliases')
    if (differs(previous.resilience, next.resilience)) applied.push('resilience')

    let auth = state.auth
    if (differs(previous.auth, next.auth)) {
      // The same Redis (or none): keep the limiter, so a reload does not refill every key's buckets.
      const sameStore =
        previous.auth.redis === next.auth.redis &&
        previous.cache.redis === next.cache.redis &&
        previous.auth.redisPrefix === next.auth.redisPrefix
      auth = new Auth(next, { log: authLog, limiter: sameStore ? state.auth.limiter : undefined })
      if (!sameStore) {
        const old = state.auth
        setTimeout(() => void old.close(), next.server.shutdownTimeout).unref()
      }
      applied.push('auth')
    }
    managed.setDrainTimeout(next.server.shutdownTimeout)
    for (const spec of added) managed.add(spec)
    for (const [id, spec] of replaced) {
      managed.replace(id, spec).catch((error: unknown) => {
        logger.error(
          { model: id, err: errorMessage(error) },
          'could not stop a managed model the config changed',
        )
      })
    }
    state = snapshot(next, auth, upstreams)
    if (applied.includes('upstreams')) await refreshUpstreams()
    notify()
    return { applied, needsRestart }
  }

  const discover = async (): Promise<void> => {
    const specs: ManagedSpec[] = Object.entries(config.managed.models).map(([id, model]) =>
      managedSpec(id, model, config),
    )
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
    get catalog() {
      return state.catalog
    },
    get upstreams() {
      return state.upstreams
    },
    actions,
    reload,
    status: () => buildStatus(state, profileIds),
    onChange(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
    async start() {
      await discover()
      if (options.autoOllama && state.upstreams.length === 0) {
        const ollama = new Upstream({ url: ollamaHostUrl(env), kind: 'ollama', name: 'ollama' })
        await ollama.refresh()
        if (ollama.healthy) {
          detectedOllama = ollama
          state = snapshot(state.config, state.auth, [ollama])
        } else await ollama.close()
      }
      await refreshUpstreams()
      if (state.catalog.entries().length === 0 && options.defaultModel) {
        const path = await options.defaultModel()
        managed.add({
          id: 'velo-tiny',
          path,
          args: [],
          idleTtlMs: config.managed.idleTtl,
          aliases: [],
          source: 'default',
        })
        state.catalog.invalidate()
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
      if (interval > 0) {
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
        const deadline = Date.now() + state.config.server.shutdownTimeout
        while (inFlight.size > 0 && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 50))
          server.closeIdleConnections()
        }
        // What is still queued will not get a place now: the scheduler answers it 503.
        scheduler.close?.()
        for (const ctx of inFlight) ctx.abort.abort(new ClientClosed())
        server.closeAllConnections()
        await closed
        await Promise.all([managed.stopAll(), options.cache?.close?.(), state.auth.close()])
        await Promise.all(
          [...state.upstreams, ...retired, ...(speech ? [speech] : [])].map((upstream) => upstream.close()),
        )
      })()
      return closing
    },
  }
}

function audioTooLarge(limit: number): VeloError {
  return new VeloError('VELO_PAYLOAD_TOO_LARGE', `audio body is larger than ${limit} bytes`, {
    suggestion: 'raise server.audioBodyLimit in velo.yaml',
  })
}

/**
 * The request body as it streams, failing (and so aborting the upstream request) once it passes
 * `limit` bytes. The rest is read and dropped, so a client that writes its whole body before it
 * reads gets to the answer.
 */
function limitBody(req: IncomingMessage, limit: number, onOverLimit: () => void): Transform {
  let received = 0
  const counted = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      received += chunk.length
      if (received <= limit) {
        callback(null, chunk)
        return
      }
      onOverLimit()
      req.unpipe(counted)
      req.resume()
      callback(audioTooLarge(limit))
    },
  })
  req.once('error', (error) => counted.destroy(error))
  return req.pipe(counted)
}

function managedSpec(id: string, model: ManagedModelConfig, config: VeloConfig): ManagedSpec {
  return {
    id,
    path: model.path,
    args: model.args,
    idleTtlMs: model.idleTtl ?? config.managed.idleTtl,
    aliases: model.aliases,
    source: 'config',
  }
}

function methodNotAllowed(method: string, path: string): VeloError {
  return new VeloError('VELO_BAD_REQUEST', `${path} does not take ${method}`, { status: 405 })
}
