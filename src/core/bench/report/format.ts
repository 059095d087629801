import { paramsLabel } from '../parse.js'
import type { BenchReport, BenchRow, Summary } from '../types.js'

/** 1234.5 -> "1235", 12.345 -> "12.3", 0.1234 -> "0.123"; "-" for nothing. */
export function num(value: number | undefined): string {
  if (value === undefined || !Number.isFinite(value)) return '-'
  const magnitude = Math.abs(value)
  if (magnitude >= 100) return value.toFixed(0)
  if (magnitude >= 10) return value.toFixed(1)
  if (magnitude >= 1) return value.toFixed(2)
  return value.toFixed(3)
}

export function pct(value: number | undefined): string {
  return value === undefined || !Number.isFinite(value) ? '-' : `${(value * 100).toFixed(0)}%`
}

/** "12.3 / 45.6" for median and p99. */
export function medianP99(summary: Summary | undefined): string {
  return summary ? `${num(summary.median)} / ${num(summary.p99)}` : '-'
}

export function rowLabel(row: BenchRow): string {
  const params = paramsLabel(row.params)
  return `${row.model}${params ? ` ${params}` : ''}`
}

export function bytes(value: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let scaled = value
  let unit = 0
  while (scaled >= 1024 && unit < units.length - 1) {
    scaled /= 1024
    unit += 1
  }
  return `${scaled.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`
}

/** One line about what was measured and where. */
export function describeTarget(report: BenchReport): string {
  const target = report.target
  const version = target.version ? ` ${target.version}` : ''
  const managed = target.managed ? ' (started by velo)' : ''
  return `${target.kind}${version} at ${target.url}${managed} via the ${target.api} API`
}

export function describeEnvironment(report: BenchReport): string {
  const hw = report.environment.hardware
  const bandwidth = report.bandwidth
    ? ` · bandwidth ${(report.bandwidth.bytesPerSec / 1e9).toFixed(1)} GB/s (${report.bandwidth.source})`
    : ''
  return `${hw.cpuModel}, ${hw.cpuCores} cores, ${bytes(hw.memoryBytes)} RAM, ${hw.os} ${hw.arch} · fingerprint ${hw.fingerprint}${bandwidth} · velo ${report.velo.version}`
}

export function describeWorkload(report: BenchReport): string {
  const s = report.settings
  const load =
    s.durationMs !== undefined ? `${s.durationMs / 1000}s per level` : `${s.requests} requests per level`
  const arrivals = s.rate !== undefined ? `, ${s.rate} req/s ${s.arrivals} arrivals` : ''
  const prompts = s.dataset
    ? `dataset ${s.dataset}`
    : `${s.promptTokens} prompt tokens${s.sharedPrefixTokens ? ` (${s.sharedPrefixTokens} shared)` : ''}`
  const eos = s.ignoreEos ? ' (EOS ignored)' : ''
  return `${prompts}, ${s.genTokens} generated${eos}; ${load}${arrivals}; warm-up ${s.warmup}; ${s.repetitions} repetition(s)`
}
