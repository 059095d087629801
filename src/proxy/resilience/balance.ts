import type { Upstream } from '../upstreams.js'
import type { BreakerSettings } from './breaker.js'

/** Keeps an upstream whose last check failed behind every healthy one, without excluding it. */
const UNHEALTHY = 1_000_000

/**
 * The upstream the next request for a model goes to: among those whose breaker lets a request
 * through and that are not in `avoid` (they failed this request already), the one with the fewest
 * outstanding requests; an unhealthy one only when no healthy one is left. An upstream ready to be
 * probed wins ties and is not held back by its health flag: the probe is its health check, and
 * without traffic it would never close its breaker. Allocates nothing.
 */
export function pickUpstream(
  upstreams: readonly Upstream[],
  avoid: readonly Upstream[] | undefined,
  now: number,
  settings: BreakerSettings,
  /**
   * Prefix affinity: the upstream that ran this request's conversation before (its prompt cache
   * holds it). Taken while it is healthy and has a free slot; when busy, the balance decides.
   */
  preferred?: Upstream,
): Upstream | undefined {
  if (
    preferred?.healthy &&
    !avoid?.includes(preferred) &&
    preferred.outstanding < (preferred.parallel ?? preferred.slots ?? 1) &&
    preferred.breaker.state(now, settings) === 'closed'
  ) {
    return preferred
  }
  let best: Upstream | undefined
  let bestScore = Number.POSITIVE_INFINITY
  for (const upstream of upstreams) {
    if (avoid?.includes(upstream)) continue
    const breaker = upstream.breaker
    if (!breaker.allows(now, settings)) continue
    const probing = breaker.state(now, settings) !== 'closed'
    const score = upstream.outstanding * 2 + (probing ? -1 : upstream.healthy ? 0 : UNHEALTHY)
    if (score < bestScore) {
      best = upstream
      bestScore = score
    }
  }
  return best
}
