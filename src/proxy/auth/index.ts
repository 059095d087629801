/**
 * Who may call velo serve: keys, scopes, model allowlists and per-key limits (design.md's
 * "request -> auth/limits" stage). With no key configured every request passes, as before; once a
 * key exists, every path but `auth.open` needs one.
 */
import type { VeloConfig } from '../../core/config/schema.js'
import { VeloError } from '../../core/errors.js'
import { MemoryRateLimiter, type RateLimiter } from './buckets.js'
import { INTERNAL_PRINCIPAL, isInternalCall } from './internal.js'
import { KeyRing, type Principal, presentedToken } from './keys.js'
import { RedisRateLimiter } from './redis-buckets.js'

export type { Principal } from './keys.js'

/** Paths only an admin key may call: velo's own operations (status, unload, cache). */
function adminOnly(path: string): boolean {
  return path.startsWith('/velo/')
}

/** `1s`, `6.5s`, `2m0s`: how OpenAI writes x-ratelimit-reset-*. */
function resetText(ms: number): string {
  const seconds = ms / 1000
  if (seconds < 60) return `${Number(seconds.toFixed(1))}s`
  return `${Math.floor(seconds / 60)}m${Math.round(seconds % 60)}s`
}

export interface AuthOptions {
  log?: (level: 'info' | 'warn', message: string) => void
  /** Replace the limiter (tests). */
  limiter?: RateLimiter
}

export class Auth {
  private readonly keys: KeyRing
  private readonly open: Set<string>
  readonly limiter: RateLimiter

  constructor(config: VeloConfig, options: AuthOptions = {}) {
    this.keys = new KeyRing(config.auth.keys)
    this.open = new Set(config.auth.open)
    const limited = config.auth.keys.some((key) => key.rpm !== undefined || key.tpm !== undefined)
    const redis = config.auth.redis === undefined ? config.cache.redis : config.auth.redis
    this.limiter =
      options.limiter ??
      (limited && redis
        ? new RedisRateLimiter({ url: redis, prefix: config.auth.redisPrefix, log: options.log })
        : new MemoryRateLimiter())
  }

  get enabled(): boolean {
    return this.keys.enabled
  }

  /**
   * The principal a request to `path` acts as: undefined when keys are off or the path is open.
   * Throws 401 without a valid key and 403 for a user key on an admin path.
   */
  authenticate(
    path: string,
    authorization: string | undefined,
    apiKey: string | undefined,
  ): Principal | undefined {
    if (!this.keys.enabled || this.open.has(path)) return undefined
    const token = presentedToken(authorization, apiKey)
    if (token === undefined) {
      throw new VeloError('VELO_UNAUTHORIZED', 'missing API key', {
        suggestion: 'send the header Authorization: Bearer <key> with a key from auth.keys in velo.yaml',
      })
    }
    const principal =
      this.keys.lookup(token) ?? (isInternalCall(path, token) ? INTERNAL_PRINCIPAL : undefined)
    if (!principal) {
      throw new VeloError('VELO_UNAUTHORIZED', 'invalid API key', {
        suggestion: 'use a key listed in auth.keys of velo.yaml',
      })
    }
    if (adminOnly(path) && principal.scope !== 'admin') {
      throw new VeloError(
        'VELO_FORBIDDEN',
        `${path} needs an admin key; key "${principal.name}" has scope user`,
        {
          suggestion: 'use a key with scope: admin',
        },
      )
    }
    return principal
  }

  /** 403 unless the key may use the model (by the name asked for, or the id it resolved to). */
  checkModel(principal: Principal | undefined, ...names: string[]): void {
    if (!principal || names.some((name) => principal.allows(name))) return
    throw new VeloError('VELO_FORBIDDEN', `key "${principal.name}" may not use model ${names[0]}`, {
      suggestion: `its models are: ${principal.models.join(', ')}`,
    })
  }

  /**
   * Admit one request of a key against its rpm and tpm buckets: the rate-limit headers to send,
   * and the 429 (with Retry-After) to answer when a bucket is empty.
   */
  async admit(
    principal: Principal | undefined,
  ): Promise<{ headers: Record<string, string>; refused: VeloError | undefined } | undefined> {
    if (!principal || (principal.rpm === undefined && principal.tpm === undefined)) return undefined
    const limits = { rpm: principal.rpm, tpm: principal.tpm }
    const decision = await this.limiter.admit(principal.bucketId, limits)
    const headers: Record<string, string> = {}
    if (limits.rpm !== undefined) {
      headers['x-ratelimit-limit-requests'] = String(limits.rpm)
      headers['x-ratelimit-remaining-requests'] = String(decision.remainingRequests ?? 0)
    }
    if (limits.tpm !== undefined) {
      headers['x-ratelimit-limit-tokens'] = String(limits.tpm)
      headers['x-ratelimit-remaining-tokens'] = String(decision.remainingTokens ?? 0)
    }
    if (decision.allowed) return { headers, refused: undefined }
    const which = decision.limit === 'tpm' ? `${limits.tpm} tokens` : `${limits.rpm} requests`
    headers[decision.limit === 'tpm' ? 'x-ratelimit-reset-tokens' : 'x-ratelimit-reset-requests'] = resetText(
      decision.retryAfterMs,
    )
    const seconds = Math.max(1, Math.ceil(decision.retryAfterMs / 1000))
    return {
      headers,
      refused: new VeloError(
        'VELO_RATE_LIMITED',
        `key "${principal.name}" is over its limit of ${which} per minute`,
        {
          suggestion: `retry after ${seconds} s`,
          retryAfterSeconds: seconds,
        },
      ),
    }
  }

  /** Charge the tokens a finished request used to its key's token bucket. */
  charge(principal: Principal | undefined, tokens: number): Promise<void> {
    if (!principal?.tpm || tokens <= 0) return Promise.resolve()
    return this.limiter.charge(principal.bucketId, principal.tpm, tokens)
  }

  close(): Promise<void> {
    return this.limiter.close()
  }
}
