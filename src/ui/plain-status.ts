import type { VeloStatus } from '../proxy/status-types.js'
import { formatClock, formatPercent, formatRate, formatUptime } from './format.js'
import type { ConnectionInfo, StatusSource } from './source.js'

/**
 * One line that sums up a snapshot, for logs, CI and pipes where a live view cannot draw:
 * `11:02:03 up 1h02m req/s 3.2 tok/s 154 busy 4/8 queue 7 cache 42% errors 3 | velo-tiny ready 4/4 q7`.
 */
export function summaryLine(
  status: VeloStatus | undefined,
  connection: ConnectionInfo | undefined,
  now: Date = new Date(),
): string {
  const clock = formatClock(now.toISOString())
  if (connection && connection.state === 'disconnected') {
    const why = connection.error ? `: ${connection.error}` : ''
    return `${clock} disconnected from ${connection.target}${why} (attempt ${connection.attempts})`
  }
  if (!status) return `${clock} connecting to ${connection?.target ?? 'velo'}`
  const busy = status.models.reduce((sum, model) => sum + model.slotsBusy, 0)
  const slots = status.models.reduce((sum, model) => sum + model.slotsTotal, 0)
  const queue = status.models.reduce((sum, model) => sum + model.queueDepth, 0)
  const lookups = status.cache.hits + status.cache.semanticHits + status.cache.misses
  const figures = [
    `up ${formatUptime(status.uptimeSeconds)}`,
    `req/s ${formatRate(status.requestsPerSecond)}`,
    `tok/s ${formatRate(status.tokensPerSecond)}`,
    `busy ${busy}/${slots}`,
    `queue ${queue}`,
    `cache ${lookups > 0 ? formatPercent(status.cache.hitRate) : '-'}`,
    `errors ${status.totals.errors}`,
  ]
  const models = status.models.map((model) => {
    const state = model.paused && model.state === 'ready' ? 'paused' : model.state
    const load = model.slotsTotal > 0 ? ` ${model.slotsBusy}/${model.slotsTotal}` : ''
    return `${model.id} ${state}${load}${model.queueDepth > 0 ? ` q${model.queueDepth}` : ''}`
  })
  return `${clock} ${figures.join(' ')}${models.length > 0 ? ` | ${models.join(', ')}` : ''}`
}

export interface PlainStatusOptions {
  source: StatusSource
  stream?: NodeJS.WritableStream
  intervalMs?: number
  /** Stop after this many lines; runs until `signal` aborts otherwise. */
  count?: number
  signal?: AbortSignal
}

/**
 * The live view for non-TTY output and CI: one summary line per interval. Until a remote source has
 * its first snapshot (or has failed to connect) nothing is printed, so `--count 1` shows figures or
 * why there are none.
 */
export async function runPlainStatus(options: PlainStatusOptions): Promise<void> {
  const stream = options.stream ?? process.stdout
  const intervalMs = options.intervalMs ?? 1000
  let printed = 0
  await new Promise<void>((resolve) => {
    let timer: NodeJS.Timeout | undefined
    const stop = () => {
      if (timer) clearTimeout(timer)
      unsubscribe()
      options.signal?.removeEventListener('abort', stop)
      resolve()
    }
    // Subscribing starts a remote source's stream; the ticks below read whatever it has.
    const unsubscribe = options.source.subscribe(() => {})
    const tick = () => {
      const status = options.source.snapshot()
      const connection = options.source.connection?.()
      const ready = status !== undefined || connection?.state === 'disconnected'
      if (ready) {
        stream.write(`${summaryLine(status, connection)}\n`)
        printed += 1
        if (options.count !== undefined && printed >= options.count) {
          stop()
          return
        }
      }
      timer = setTimeout(tick, ready ? intervalMs : 100)
    }
    if (options.signal?.aborted) {
      stop()
      return
    }
    options.signal?.addEventListener('abort', stop)
    tick()
  })
}
