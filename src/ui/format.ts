/**
 * Short, fixed-width renderings of the figures the dashboard, `velo top` and the plain status lines
 * show. Pure functions, so every view formats a number the same way.
 */

const SPARK = '▁▂▃▄▅▆▇█'

/** `59s`, `12m05s`, `3h04m`, `2d03h`: the two largest units, like `uptime`. */
export function formatUptime(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds))
  const days = Math.floor(s / 86_400)
  const hours = Math.floor((s % 86_400) / 3600)
  const minutes = Math.floor((s % 3600) / 60)
  const secs = s % 60
  if (days > 0) return `${days}d${pad2(hours)}h`
  if (hours > 0) return `${hours}h${pad2(minutes)}m`
  if (minutes > 0) return `${minutes}m${pad2(secs)}s`
  return `${secs}s`
}

/** A rate or count in at most 5 characters: `0`, `3.2`, `154`, `12.3k`, `1.2M`. */
export function formatRate(value: number): string {
  if (!Number.isFinite(value) || value <= 0) return '0'
  if (value < 10) return trimZero(value.toFixed(1))
  if (value < 1000) return String(Math.round(value))
  if (value < 10_000) return `${trimZero((value / 1000).toFixed(2))}k`
  if (value < 1e6) return `${Math.round(value / 1000)}k`
  return `${trimZero((value / 1e6).toFixed(1))}M`
}

/** Milliseconds: `-` when unknown, `850ms`, `1.2s`, `42s`, `3m10s`. */
export function formatMs(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '-'
  if (ms < 1000) return `${Math.round(ms)}ms`
  if (ms < 10_000) return `${trimZero((ms / 1000).toFixed(1))}s`
  if (ms < 60_000) return `${Math.round(ms / 1000)}s`
  return formatUptime(ms / 1000)
}

/** TTFT percentiles as one cell: `120/480ms`, `1.2/3.4s`, `-`. */
export function formatTtft(p50: number | undefined, p95: number | undefined): string {
  if (p50 === undefined && p95 === undefined) return '-'
  if ((p50 ?? 0) < 1000 && (p95 ?? 0) < 1000) {
    return `${p50 === undefined ? '-' : Math.round(p50)}/${p95 === undefined ? '-' : Math.round(p95)}ms`
  }
  const sec = (ms: number | undefined) => (ms === undefined ? '-' : trimZero((ms / 1000).toFixed(1)))
  return `${sec(p50)}/${sec(p95)}s`
}

/** A ratio 0..1 as a whole percentage. */
export function formatPercent(ratio: number): string {
  if (!Number.isFinite(ratio)) return '-'
  return `${Math.round(Math.max(0, Math.min(1, ratio)) * 100)}%`
}

/** `512B`, `1.5KiB`, `256MiB`. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = Math.max(0, bytes)
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit += 1
  }
  return unit === 0 ? `${Math.round(value)}B` : `${trimZero(value.toFixed(1))}${units[unit]}`
}

/**
 * One block character per value, scaled to the largest value shown; the newest values win when the
 * series is longer than the width, and a short series is left-padded so time runs left to right.
 */
export function sparkline(values: readonly number[], width: number): string {
  if (width <= 0) return ''
  const shown = values.slice(-width)
  const max = Math.max(0, ...shown.filter(Number.isFinite))
  const bars = shown.map((value) => {
    if (!Number.isFinite(value) || value <= 0 || max === 0) return SPARK[0]
    const index = Math.min(SPARK.length - 1, Math.ceil((value / max) * (SPARK.length - 1)))
    return SPARK[index]
  })
  return ' '.repeat(width - bars.length) + bars.join('')
}

/** Cut to `width` characters with an ellipsis, then pad; cells never push a row past its width. */
export function fitCell(text: string, width: number, align: 'left' | 'right' = 'left'): string {
  if (width <= 0) return ''
  const chars = [...text]
  const cut = chars.length > width ? `${chars.slice(0, Math.max(0, width - 1)).join('')}…` : text
  const length = Math.min(chars.length, width)
  const padding = ' '.repeat(width - length)
  return align === 'left' ? cut + padding : padding + cut
}

/** `HH:MM:SS` in local time for an ISO timestamp; the input when it does not parse. */
export function formatClock(iso: string): string {
  const date = new Date(iso)
  if (Number.isNaN(date.getTime())) return iso
  return `${pad2(date.getHours())}:${pad2(date.getMinutes())}:${pad2(date.getSeconds())}`
}

function pad2(value: number): string {
  return String(value).padStart(2, '0')
}

function trimZero(text: string): string {
  return text.includes('.') ? text.replace(/\.?0+$/, '') : text
}
