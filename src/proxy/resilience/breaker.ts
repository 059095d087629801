/**
 * A circuit breaker per upstream (Envoy's outlier ejection, in its simplest form): after
 * `failures` consecutive failures the upstream is skipped for `cooldownMs`; then one request (the
 * probe) may try it, and its outcome closes the breaker or opens it for another cooldown.
 *
 * The thresholds are passed to each call rather than kept, so a reloaded config applies to the
 * next request without rebuilding any breaker, and nothing is allocated per request.
 */

export type BreakerState = 'closed' | 'open' | 'half-open'

export interface BreakerSettings {
  /** Consecutive failures that open the breaker. */
  failures: number
  /** How long an open breaker rejects before it lets a probe through. */
  cooldownMs: number
}

/** What `acquire` answered: go as usual, go as the one probe of a half-open breaker, or not at all. */
export type BreakerPass = 'pass' | 'probe' | 'reject'

export class CircuitBreaker {
  private mode: BreakerState = 'closed'
  private consecutive = 0
  private openedAt = 0
  private probing = false
  /** Times the breaker opened, for status and tests. */
  opened = 0

  /** The state as a reader should see it: an open breaker past its cooldown is half-open. */
  state(now: number, settings: BreakerSettings): BreakerState {
    if (this.mode === 'open' && now - this.openedAt >= settings.cooldownMs) return 'half-open'
    return this.mode
  }

  /** Consecutive failures so far (0 after any success). */
  get failures(): number {
    return this.consecutive
  }

  /** Whether `acquire` would let a request through now; changes nothing. */
  allows(now: number, settings: BreakerSettings): boolean {
    if (this.mode === 'closed') return true
    return !this.probing && this.state(now, settings) === 'half-open'
  }

  /** Let a request through, or not. A `probe` answer must end in success, failure or abandon. */
  acquire(now: number, settings: BreakerSettings): BreakerPass {
    if (this.mode === 'closed') return 'pass'
    if (this.probing || this.state(now, settings) !== 'half-open') return 'reject'
    this.mode = 'half-open'
    this.probing = true
    return 'probe'
  }

  /** The upstream answered: whatever the state, it works again. */
  success(): void {
    this.mode = 'closed'
    this.consecutive = 0
    this.probing = false
  }

  /** The upstream failed (refused, reset, timed out, 502/503). */
  failure(now: number, settings: BreakerSettings): void {
    this.consecutive++
    if (this.mode === 'half-open') {
      this.open(now)
    } else if (this.mode === 'closed' && this.consecutive >= settings.failures) {
      this.open(now)
    }
  }

  /** The probe ended without telling anything (its client left): the next request may probe. */
  abandon(): void {
    this.probing = false
  }

  /** Milliseconds until an open breaker lets a probe through (0 when it would now). */
  retryAfterMs(now: number, settings: BreakerSettings): number {
    if (this.mode !== 'open') return 0
    return Math.max(0, this.openedAt + settings.cooldownMs - now)
  }

  private open(now: number): void {
    this.mode = 'open'
    this.openedAt = now
    this.probing = false
    this.opened++
  }
}
