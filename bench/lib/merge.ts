/**
 * Several runs of one target as one result. The harness measures targets in rounds, in mirrored
 * order (A B C, then C B A), so that a machine that gets busier or quieter during the run does not
 * favour whichever target went first; the rounds of a target are then pooled here.
 */
import type { LoadResult } from './load-types.js'
import { type Summary, summarize } from './stats.js'

function pooled(results: readonly LoadResult[], key: string): number[] | undefined {
  const parts = results.map((result) => result.raw?.[key]).filter((part) => part !== undefined)
  return parts.length > 0 ? parts.flat() : undefined
}

function summaryOf(results: readonly LoadResult[], key: string): Summary | undefined {
  const samples = pooled(results, key)
  return samples && samples.length > 0 ? summarize(samples) : undefined
}

/** One result from runs that kept their samples (`keepSamples`): counts add up, percentiles are pooled. */
export function mergeResults(results: readonly LoadResult[]): LoadResult {
  const [only] = results
  if (!only) throw new Error('mergeResults: no results')
  if (results.length === 1) return only
  const sum = (pick: (r: LoadResult) => number) => results.reduce((total, r) => total + pick(r), 0)
  const ok = sum((r) => r.ok)
  const elapsedMs = sum((r) => r.elapsedMs)
  const completionTokens = sum((r) => r.completionTokens)
  const statuses: Record<string, number> = {}
  for (const result of results) {
    for (const [status, count] of Object.entries(result.statuses))
      statuses[status] = (statuses[status] ?? 0) + count
  }
  const headerValues = new Set(
    results.flatMap((r) => Object.keys(r.raw ?? {}).filter((key) => key.startsWith('header:'))),
  )
  const byHeader =
    headerValues.size > 0
      ? Object.fromEntries(
          [...headerValues].map((key) => [key.slice('header:'.length), summaryOf(results, key) as Summary]),
        )
      : undefined
  const raw: Record<string, number[]> = {}
  for (const key of new Set(results.flatMap((r) => Object.keys(r.raw ?? {}))))
    raw[key] = pooled(results, key) ?? []
  return {
    ok,
    errors: sum((r) => r.errors),
    retries: sum((r) => r.retries),
    elapsedMs,
    rps: elapsedMs > 0 ? ok / (elapsedMs / 1000) : 0,
    latency: summaryOf(results, 'latency') ?? summarize([]),
    statuses,
    firstError: results.find((r) => r.firstError !== undefined)?.firstError,
    byHeader,
    ttfb: summaryOf(results, 'ttfb'),
    chunkOneWay: summaryOf(results, 'chunkOneWay'),
    chunkGap: summaryOf(results, 'chunkGap'),
    events: sum((r) => r.events),
    ttft: summaryOf(results, 'ttft'),
    completionTokens,
    tokensPerSecond: elapsedMs > 0 ? completionTokens / (elapsedMs / 1000) : 0,
    raw,
  }
}

/** Round r runs the targets forwards when r is even and backwards when it is odd (A B C, C B A, ...). */
export function roundOrder<T>(targets: readonly T[], round: number): T[] {
  return round % 2 === 0 ? [...targets] : [...targets].reverse()
}
