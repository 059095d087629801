import type { ProxyState } from './context.js'
import { resilienceSettings } from './resilience/settings.js'
import type { ModelStatus, UpstreamHealth, VeloStatus } from './status-types.js'

/** The /velo/status snapshot: what the dashboard, `velo top` and scripts read. */
export function buildStatus(state: ProxyState, profiles: Map<string, string | undefined>): VeloStatus {
  const now = Date.now()
  const managed = new Map(state.managed.status().map((model) => [model.id, model]))
  const models: ModelStatus[] = state.catalog.entries().map((entry) => {
    const own = managed.get(entry.id)
    const scheduled = state.scheduler.snapshot(entry.id)
    const rates = state.stats.modelRates(entry.id, now)
    // A model with several upstreams is down only when all of them are.
    const upstreamDown = entry.upstreams.length > 0 && entry.upstreams.every((upstream) => !upstream.healthy)
    return {
      id: entry.id,
      aliases: entry.aliases,
      kind: entry.kind,
      upstream: own ? own.url : entry.upstream?.url,
      state: own ? own.state : upstreamDown ? 'failed' : 'ready',
      ...(state.scheduling
        ? // velo's scheduler holds the queue: its admitted requests that still wait for the model to
          // load are queued, not busy.
          {
            slotsBusy: Math.max(0, scheduled.running - (own?.waiting ?? 0)),
            slotsTotal: scheduled.capacity,
            queueDepth: scheduled.queueDepth + (own?.waiting ?? 0),
          }
        : {
            slotsBusy: state.active.get(entry.id) ?? 0,
            slotsTotal: own ? own.slotsTotal : scheduled.capacity,
            queueDepth: state.waiting.get(entry.id) ?? 0,
          }),
      paused: scheduled.paused,
      requestsPerSecond: rates.requestsPerSecond,
      generationTokensPerSecond: rates.generationTokensPerSecond,
      ttftP50Ms: rates.ttftP50Ms,
      ttftP95Ms: rates.ttftP95Ms,
      profile: own ? own.profile : profiles.get(entry.id),
      error: own ? own.error : upstreamDown ? entry.upstream?.lastError : undefined,
    }
  })
  const breakerSettings = resilienceSettings(state.config).breaker
  const upstreams: UpstreamHealth[] = state.upstreams.map((upstream) => ({
    url: upstream.url,
    kind: upstream.kind ?? 'openai',
    healthy: upstream.healthy,
    lastError: upstream.lastError,
    lastErrorAt: upstream.lastErrorAt,
    breaker: upstream.breaker.state(now, breakerSettings),
    consecutiveFailures: upstream.breaker.failures,
    outstanding: upstream.outstanding,
  }))
  for (const model of managed.values()) {
    if (model.url && model.state === 'ready') {
      upstreams.push({
        url: model.url,
        kind: 'managed',
        healthy: true,
        lastError: undefined,
        lastErrorAt: undefined,
      })
    }
  }
  const cache = state.cache?.stats()
  const looked = (cache?.hits ?? 0) + (cache?.semanticHits ?? 0) + (cache?.misses ?? 0)
  return {
    version: state.version,
    listen: state.listen,
    startedAt: state.startedAt.toISOString(),
    uptimeSeconds: Math.round((now - state.startedAt.getTime()) / 1000),
    totals: { ...state.stats.totals },
    requestsPerSecond: state.stats.requestsPerSecond(now),
    tokensPerSecond: state.stats.tokensPerSecond(now),
    tokensPerSecondHistory: state.stats.tokensPerSecondHistory(now),
    cache: {
      hits: cache?.hits ?? 0,
      semanticHits: cache?.semanticHits ?? 0,
      misses: cache?.misses ?? 0,
      hitRate: looked === 0 ? 0 : ((cache?.hits ?? 0) + (cache?.semanticHits ?? 0)) / looked,
      entries: cache?.entries ?? 0,
      bytes: cache?.bytes ?? 0,
      redis: cache?.redis ?? 'off',
      redisOutages: cache?.redisOutages ?? 0,
      embedErrors: cache?.embedErrors ?? 0,
    },
    models,
    recent: state.stats.recent(),
    upstreams,
    errors: state.stats.errors(),
  }
}

/** velo_upstream_breaker_state: 0 closed, 1 half-open (a probe may go), 2 open. */
const BREAKER_GAUGE = { closed: 0, 'half-open': 1, open: 2 } as const

/** Bring the gauges up to date (before each /metrics scrape). */
export function refreshGauges(state: ProxyState): void {
  const { metrics } = state
  metrics.active.reset()
  metrics.queueDepth.reset()
  for (const [model, count] of state.active) metrics.active.set({ model }, count)
  for (const [model, count] of state.waiting) metrics.queueDepth.set({ model }, count)
  const breakerSettings = resilienceSettings(state.config).breaker
  const now = Date.now()
  for (const upstream of state.upstreams) {
    metrics.upstreamUp.set({ upstream: upstream.name }, upstream.healthy ? 1 : 0)
    metrics.upstreamBreaker.set(
      { upstream: upstream.name },
      BREAKER_GAUGE[upstream.breaker.state(now, breakerSettings)],
    )
    metrics.upstreamOutstanding.set({ upstream: upstream.name }, upstream.outstanding)
  }
  for (const model of state.managed.status()) {
    metrics.modelLoaded.set({ model: model.id }, model.state === 'ready' ? 1 : 0)
  }
  for (const entry of state.catalog.entries()) {
    if (entry.kind !== 'managed')
      metrics.modelLoaded.set({ model: entry.id }, entry.upstream?.healthy ? 1 : 0)
  }
}
