/**
 * Per-key limits as token buckets: `rpm` requests and `tpm` tokens a minute, each bucket full at
 * its per-minute figure and refilled continuously (a key may burst its whole minute, then goes at
 * the steady rate). Requests take one from the request bucket when admitted; tokens are charged
 * when a request ends (its usage is known only then), so the token bucket may go below zero and
 * the key waits until it refills above zero. The Redis limiter (redis-buckets.ts) runs the same
 * arithmetic in a Lua script, so several velo instances share one bucket per key.
 */

export interface KeyLimits {
  rpm: number | undefined
  tpm: number | undefined
}

export interface LimitDecision {
  allowed: boolean
  /** When refused: how long until the request would be admitted. */
  retryAfterMs: number
  /** Which limit refused it. */
  limit: 'rpm' | 'tpm' | undefined
  /** What is left after this request (absent for a limit the key does not have). */
  remainingRequests: number | undefined
  remainingTokens: number | undefined
}

export interface RateLimiter {
  /** Admit one request of a key, taking one from its request bucket. */
  admit(id: string, limits: KeyLimits): Promise<LimitDecision>
  /** Charge the tokens a finished request used. */
  charge(id: string, tpm: number, tokens: number): Promise<void>
  /** `memory`, or `redis` while the shared store answers. */
  readonly store: 'memory' | 'redis'
  close(): Promise<void>
}

export interface Bucket {
  level: number
  /** When `level` was last brought up to date (ms). */
  at: number
}

const MINUTE_MS = 60_000

/** The bucket's level at `now`: refilled at capacity per minute, never above capacity. */
export function refill(bucket: Bucket | undefined, capacity: number, now: number): Bucket {
  if (!bucket) return { level: capacity, at: now }
  const level = Math.min(capacity, bucket.level + (Math.max(0, now - bucket.at) * capacity) / MINUTE_MS)
  return { level, at: now }
}

/** Milliseconds until a bucket at `level` holds `needed` (it refills at capacity per minute). */
export function waitFor(level: number, needed: number, capacity: number): number {
  return level >= needed ? 0 : Math.ceil(((needed - level) * MINUTE_MS) / capacity)
}

/**
 * Decide one request against both buckets at `now`; returns the decision and the buckets to store.
 * Nothing is taken when either bucket refuses.
 */
export function decide(
  requests: Bucket | undefined,
  tokens: Bucket | undefined,
  limits: KeyLimits,
  now: number,
): { decision: LimitDecision; requests: Bucket | undefined; tokens: Bucket | undefined } {
  const req = limits.rpm === undefined ? undefined : refill(requests, limits.rpm, now)
  const tok = limits.tpm === undefined ? undefined : refill(tokens, limits.tpm, now)
  let limit: LimitDecision['limit']
  let retryAfterMs = 0
  if (req && limits.rpm !== undefined && req.level < 1) {
    limit = 'rpm'
    retryAfterMs = waitFor(req.level, 1, limits.rpm)
  }
  // A token bucket charged below zero by the last answers: wait until it is above zero again.
  if (tok && limits.tpm !== undefined && tok.level <= 0) {
    const wait = waitFor(tok.level, Math.min(1, limits.tpm), limits.tpm)
    if (wait > retryAfterMs) {
      limit = 'tpm'
      retryAfterMs = wait
    }
  }
  const allowed = limit === undefined
  if (allowed && req) req.level -= 1
  return {
    decision: {
      allowed,
      retryAfterMs,
      limit,
      remainingRequests: req ? Math.max(0, Math.floor(req.level)) : undefined,
      remainingTokens: tok ? Math.max(0, Math.floor(tok.level)) : undefined,
    },
    requests: req,
    tokens: tok,
  }
}

/** Charge tokens; the bucket may go below zero, down to one minute's worth of debt. */
export function chargeBucket(
  bucket: Bucket | undefined,
  capacity: number,
  tokens: number,
  now: number,
): Bucket {
  const current = refill(bucket, capacity, now)
  return { level: Math.max(-capacity, current.level - tokens), at: now }
}

/** Buckets in this process: limits hold per velo instance. */
export class MemoryRateLimiter implements RateLimiter {
  readonly store = 'memory' as const
  private readonly buckets = new Map<string, Bucket>()

  constructor(private readonly now: () => number = Date.now) {}

  async admit(id: string, limits: KeyLimits): Promise<LimitDecision> {
    return this.admitNow(id, limits)
  }

  admitNow(id: string, limits: KeyLimits): LimitDecision {
    const result = decide(this.buckets.get(`${id}:rpm`), this.buckets.get(`${id}:tpm`), limits, this.now())
    if (result.requests) this.buckets.set(`${id}:rpm`, result.requests)
    if (result.tokens) this.buckets.set(`${id}:tpm`, result.tokens)
    return result.decision
  }

  async charge(id: string, tpm: number, tokens: number): Promise<void> {
    this.chargeNow(id, tpm, tokens)
  }

  chargeNow(id: string, tpm: number, tokens: number): void {
    this.buckets.set(`${id}:tpm`, chargeBucket(this.buckets.get(`${id}:tpm`), tpm, tokens, this.now()))
  }

  async close(): Promise<void> {
    this.buckets.clear()
  }
}
