export interface BackoffPolicy {
  /** The wait after the second failure in a row; each further failure doubles it. */
  initialMs: number
  /** The longest wait between two starts. */
  maxMs: number
  /** A process that ran this long before it died starts a fresh series. */
  stableMs: number
}

export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 500, maxMs: 30_000, stableMs: 60_000 }

/**
 * When a supervised process may be started again after failures: the first retry is at once (a
 * server that crashed once is restarted by the next request), then 0.5 s, 1 s, 2 s ... up to the
 * maximum while failures keep coming in a row. A failure is a start that did not come up, or a
 * started process that died on its own; one that had run for `stableMs` first forgives the past.
 * Times are passed in, so the policy is the same under a test's clock and the real one.
 */
export class RestartBackoff {
  private count = 0
  private lastFailureAt = 0

  constructor(private readonly policy: BackoffPolicy = DEFAULT_BACKOFF) {}

  /** Failures in a row so far. */
  get failures(): number {
    return this.count
  }

  /** A start failed: the process exited or was not healthy in time. */
  startFailed(now: number): void {
    this.count++
    this.lastFailureAt = now
  }

  /** A started process died on its own after running `uptimeMs`. */
  crashed(uptimeMs: number, now: number): void {
    this.ran(uptimeMs)
    this.count++
    this.lastFailureAt = now
  }

  /** A started process stopped as planned (unloaded) after running `uptimeMs`. */
  ran(uptimeMs: number): void {
    if (uptimeMs >= this.policy.stableMs) this.count = 0
  }

  reset(): void {
    this.count = 0
    this.lastFailureAt = 0
  }

  /** The wait the current series asks for between the last failure and the next start. */
  delayMs(): number {
    if (this.count <= 1) return 0
    return Math.min(this.policy.maxMs, this.policy.initialMs * 2 ** (this.count - 2))
  }

  /** Time left before the next start may be tried (0: now). */
  remainingMs(now: number): number {
    return Math.max(0, this.lastFailureAt + this.delayMs() - now)
  }
}
