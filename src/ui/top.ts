import { parseDuration } from '../core/config/units.js'
import { VeloError } from '../core/errors.js'
import type { VeloStatus } from '../proxy/status-types.js'
import { runPlainStatus } from './plain-status.js'
import { createRemote } from './remote.js'
import { runDashboard } from './run-dashboard.js'

export interface TopOptions {
  url: string
  apiKey?: string | undefined
  /** `live`: the full-screen dashboard; `plain`: one summary line per interval. */
  mode: 'live' | 'plain'
  /** Plain mode: time between lines (`1s`, `500ms`). */
  interval?: string | undefined
  /** Plain mode: stop after this many lines. */
  count?: number | undefined
}

/** `velo top`: attach to a running velo and show its dashboard until the user quits. */
export async function runTop(options: TopOptions): Promise<void> {
  const intervalMs = parseInterval(options.interval ?? '1s')
  const remote = createRemote({ url: options.url, apiKey: options.apiKey })
  try {
    if (options.mode === 'live') {
      await runDashboard({ source: remote.source, actions: remote.actions }).closed
      return
    }
    const stop = new AbortController()
    const onSignal = () => stop.abort()
    process.once('SIGINT', onSignal)
    process.once('SIGTERM', onSignal)
    try {
      await runPlainStatus({ source: remote.source, intervalMs, count: options.count, signal: stop.signal })
    } finally {
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
    }
  } finally {
    await remote.close()
  }
}

/** One snapshot from a running velo (`velo top --json`). */
export async function fetchVeloStatus(url: string, apiKey?: string): Promise<VeloStatus> {
  const remote = createRemote({ url, apiKey })
  try {
    return await remote.fetchStatus()
  } finally {
    await remote.close()
  }
}

function parseInterval(input: string): number {
  const ms = parseDuration(input)
  if (ms === undefined || ms < 100) {
    throw new VeloError(
      'VELO_BAD_REQUEST',
      `--interval: expected a duration of at least 100ms like 2s, got "${input}"`,
      {
        exitCode: 2,
      },
    )
  }
  return ms
}
