import type { RecentRequest } from './status-types.js'

/** What velo records about each finished request (the log line, the metrics and /velo/status). */
export interface RequestRecord extends RecentRequest {
  upstream: string | undefined
  queueMs: number
}

const HISTORY_SECONDS = 60
const RATE_SECONDS = 5
const RECENT = 50
const TTFT_SAMPLES = 200
const ERRORS = 20

/** Per-second counters over the last minute, in a ring indexed by the epoch second. */
class SecondBuckets {
  private readonly seconds = new Float64Array(HISTORY_SECONDS).fill(-1)
  private readonly requests = new Float64Array(HISTORY_SECONDS)
  private readonly tokens = new Float64Array(HISTORY_SECONDS)

  private slot(second: number): number {
    const index = second % HISTORY_SECONDS
    if (this.seconds[index] !== second) {
      this.seconds[index] = second
      this.requests[index] = 0
      this.tokens[index] = 0
    }
    return index
  }

  addRequest(second: number): void {
    const index = this.slot(second)
    this.requests[index] = (this.requests[index] ?? 0) + 1
  }

  /** Spread generated tokens evenly over the seconds the generation took. */
  addTokens(fromMs: number, toMs: number, tokens: number): void {
    const first = Math.max(Math.floor(fromMs / 1000), Math.floor(toMs / 1000) - HISTORY_SECONDS + 1)
    const last = Math.floor(toMs / 1000)
    const share = tokens / (last - first + 1)
    for (let second = first; second <= last; second++) {
      const index = this.slot(second)
      this.tokens[index] = (this.tokens[index] ?? 0) + share
    }
  }

  private valueAt(series: Float64Array, second: number): number {
    const index = second % HISTORY_SECONDS
    return this.seconds[index] === second ? (series[index] ?? 0) : 0
  }

  /** Average per second over the `span` complete seconds before `nowMs`. */
  rate(kind: 'requests' | 'tokens', nowMs: number, span = RATE_SECONDS): number {
    const series = kind === 'requests' ? this.requests : this.tokens
    const current = Math.floor(nowMs / 1000)
    let sum = 0
    for (let second = current - span; second < current; second++) sum += this.valueAt(series, second)
    return sum / span
  }

  /** Tokens per second for each of the last 60 complete seconds, oldest first. */
  tokenHistory(nowMs: number): number[] {
    const current = Math.floor(nowMs / 1000)
    const history: number[] = []
    for (let second = current - HISTORY_SECONDS; second < current; second++) {
      history.push(Math.round(this.valueAt(this.tokens, second) * 10) / 10)
    }
    return history
  }
}

function percentile(sorted: number[], p: number): number | undefined {
  if (sorted.length === 0) return undefined
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[index]
}

export interface ModelRates {
  requestsPerSecond: number
  generationTokensPerSecond: number
  ttftP50Ms: number | undefined
  ttftP95Ms: number | undefined
}

class ModelStats {
  readonly buckets = new SecondBuckets()
  readonly ttfts: number[] = []
}

/** Running totals, rates and the recent requests that /velo/status reports. */
export class StatsTracker {
  readonly totals = { requests: 0, errors: 0, promptTokens: 0, completionTokens: 0 }
  private readonly all = new SecondBuckets()
  private readonly models = new Map<string, ModelStats>()
  private readonly recentRing: RequestRecord[] = []
  private readonly errorList: { at: string; message: string }[] = []

  /** `modelKey`: the model's per-model figures to add to ('' for none, e.g. an unknown name). */
  record(entry: RequestRecord, startedAtMs: number, endedAtMs: number, modelKey = entry.model): void {
    this.totals.requests++
    if (entry.status >= 400) this.totals.errors++
    this.totals.promptTokens += entry.promptTokens ?? 0
    this.totals.completionTokens += entry.completionTokens ?? 0
    const second = Math.floor(endedAtMs / 1000)
    this.all.addRequest(second)
    let model = modelKey ? this.models.get(modelKey) : undefined
    if (!model && modelKey) {
      model = new ModelStats()
      this.models.set(modelKey, model)
    }
    model?.buckets.addRequest(second)
    if (entry.completionTokens) {
      const generationStart = startedAtMs + (entry.ttftMs ?? 0)
      this.all.addTokens(generationStart, endedAtMs, entry.completionTokens)
      model?.buckets.addTokens(generationStart, endedAtMs, entry.completionTokens)
    }
    if (model && entry.ttftMs !== undefined && entry.status < 400) {
      model.ttfts.push(entry.ttftMs)
      if (model.ttfts.length > TTFT_SAMPLES) model.ttfts.shift()
    }
    this.recentRing.push(entry)
    if (this.recentRing.length > RECENT) this.recentRing.shift()
  }

  error(message: string): void {
    this.errorList.push({ at: new Date().toISOString(), message })
    if (this.errorList.length > ERRORS) this.errorList.shift()
  }

  modelRates(model: string, nowMs: number): ModelRates {
    const stats = this.models.get(model)
    if (!stats) {
      return {
        requestsPerSecond: 0,
        generationTokensPerSecond: 0,
        ttftP50Ms: undefined,
        ttftP95Ms: undefined,
      }
    }
    const sorted = [...stats.ttfts].sort((a, b) => a - b)
    return {
      requestsPerSecond: stats.buckets.rate('requests', nowMs),
      generationTokensPerSecond: stats.buckets.rate('tokens', nowMs),
      ttftP50Ms: percentile(sorted, 50),
      ttftP95Ms: percentile(sorted, 95),
    }
  }

  requestsPerSecond(nowMs: number): number {
    return this.all.rate('requests', nowMs)
  }

  tokensPerSecond(nowMs: number): number {
    return this.all.rate('tokens', nowMs)
  }

  tokensPerSecondHistory(nowMs: number): number[] {
    return this.all.tokenHistory(nowMs)
  }

  /** Newest first, as the dashboard lists them. */
  recent(): RecentRequest[] {
    return this.recentRing
      .slice()
      .reverse()
      .map(({ upstream: _upstream, queueMs: _queueMs, ...request }) => request)
  }

  errors(): { at: string; message: string }[] {
    return this.errorList.slice()
  }
}
