/**
 * The wait before retry `retry` (1 for the first retry): exponential from `baseMs`, capped at
 * `maxMs`, with "equal jitter" (half the step fixed, half random) so that clients which failed
 * together do not come back together, while each wait stays at least half its step.
 */
export function backoffDelay(
  retry: number,
  baseMs: number,
  maxMs: number,
  random: () => number = Math.random,
): number {
  const step = Math.min(maxMs, baseMs * 2 ** Math.max(0, retry - 1))
  return step / 2 + random() * (step / 2)
}
