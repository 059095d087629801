import type { VeloConfig } from '../../core/config/schema.js'
import type { BreakerSettings } from './breaker.js'

/** The `resilience` section in the units the request path uses, once per config. */
export interface ResilienceSettings {
  connectTimeoutMs: number
  firstTokenTimeoutMs: number
  idleTimeoutMs: number
  retries: number
  backoffMs: number
  maxBackoffMs: number
  breaker: BreakerSettings
}

const derived = new WeakMap<VeloConfig, ResilienceSettings>()

/** The shorter of two timeouts, where 0 means none. */
function bounded(timeout: number, cap: number): number {
  if (timeout === 0) return cap
  if (cap === 0) return timeout
  return Math.min(timeout, cap)
}

/**
 * `server.upstreamTimeout` (the one timeout velo had before these) still bounds every wait: a
 * config that lowered it keeps its 504s as they were. A timeout of 0 waits without limit.
 */
export function resilienceSettings(config: VeloConfig): ResilienceSettings {
  let settings = derived.get(config)
  if (!settings) {
    const { timeouts, retries, breaker } = config.resilience
    const cap = config.server.upstreamTimeout
    settings = {
      connectTimeoutMs: bounded(timeouts.connect, cap),
      firstTokenTimeoutMs: bounded(timeouts.firstToken, cap),
      idleTimeoutMs: bounded(timeouts.idle, cap),
      retries: retries.max,
      backoffMs: retries.backoff,
      maxBackoffMs: Math.max(retries.backoff, retries.maxBackoff),
      breaker: { failures: breaker.failures, cooldownMs: breaker.cooldown },
    }
    derived.set(config, settings)
  }
  return settings
}
