/** The targets of issue 10, how a measurement is judged against them, and the tables that show it. */

export type Unit = 'ms' | 'us' | 'x' | 'req/s' | 'tok/s' | 'req/min'

export interface Target {
  id: string
  section: number
  /** What is compared, as the table shows it. */
  metric: string
  comparator: '<=' | '>='
  limit: number
  unit: Unit
}

export const TARGETS: readonly Target[] = [
  {
    id: 'added-p50-c1',
    section: 1,
    metric: 'added latency p50, c=1 (velo - direct)',
    comparator: '<=',
    limit: 0.15,
    unit: 'ms',
  },
  {
    id: 'rps-c32-vs-portkey',
    section: 1,
    metric: 'req/s at c=32, velo / Portkey',
    comparator: '>=',
    limit: 3,
    unit: 'x',
  },
  { id: 'p99-c32', section: 1, metric: 'velo p99 at c=32', comparator: '<=', limit: 5, unit: 'ms' },
  {
    id: 'chunk-added',
    section: 2,
    metric: 'per-chunk added latency p50 (velo - direct)',
    comparator: '<=',
    limit: 50,
    unit: 'us',
  },
  {
    id: 'ttfb-added',
    section: 2,
    metric: 'time to first byte added, p50 (velo - direct)',
    comparator: '<=',
    limit: 0.3,
    unit: 'ms',
  },
  {
    id: 'cache-hit-p99',
    section: 3,
    metric: 'exact-cache hit p99 (through velo)',
    comparator: '<=',
    limit: 1,
    unit: 'ms',
  },
  {
    id: 'semantic-p99-100k',
    section: 3,
    metric: 'semantic lookup p99 at 100k entries',
    comparator: '<=',
    limit: 2,
    unit: 'ms',
  },
  {
    id: 'engine-tok-s',
    section: 4,
    metric: 'generation tok/s, velo / direct (8 clients)',
    comparator: '>=',
    limit: 0.97,
    unit: 'x',
  },
  {
    id: 'engine-ttft-p99',
    section: 4,
    metric: 'TTFT p99, velo / direct (8 clients)',
    comparator: '<=',
    limit: 1.05,
    unit: 'x',
  },
  {
    id: 'affinity',
    section: 5,
    metric: 'completed req/min, affinity / arrival order',
    comparator: '>=',
    limit: 3,
    unit: 'x',
  },
]

export type Outcome =
  | { kind: 'measured'; value: number; detail?: string }
  | { kind: 'pending'; reason: string }
  | { kind: 'error'; reason: string }
  | { kind: 'not-run' }

export type Status = 'pass' | 'FAIL' | 'pending' | 'ERROR' | 'not run' | 'info'

export interface Row {
  section: number
  metric: string
  measured: string
  goal: string
  status: Status
  detail: string
}

/** A number with the digits its unit deserves: 0.123 ms, 45 us, 3.21x, 11,900 req/s. */
export function formatValue(value: number, unit: Unit): string {
  if (!Number.isFinite(value)) return String(value)
  switch (unit) {
    case 'ms':
      return `${value.toFixed(Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : 3)} ms`
    case 'us':
      return `${Math.round(value)} us`
    case 'x':
      return `${value.toFixed(2)}x`
    default:
      return `${Math.round(value).toLocaleString('en-US')} ${unit}`
  }
}

export function goalText(target: Target): string {
  return `${target.comparator} ${target.limit}${target.unit === 'x' ? 'x' : ` ${target.unit}`}`
}

/** Pass when the value meets the limit (equal counts as meeting it). */
export function judge(target: Target, outcome: Outcome): Row {
  const base = { section: target.section, metric: target.metric, goal: goalText(target) }
  if (outcome.kind === 'not-run') return { ...base, measured: '-', status: 'not run', detail: '' }
  if (outcome.kind === 'pending') return { ...base, measured: '-', status: 'pending', detail: outcome.reason }
  if (outcome.kind === 'error') return { ...base, measured: '-', status: 'ERROR', detail: outcome.reason }
  const ok =
    Number.isFinite(outcome.value) &&
    (target.comparator === '<=' ? outcome.value <= target.limit : outcome.value >= target.limit)
  return {
    ...base,
    measured: formatValue(outcome.value, target.unit),
    status: ok ? 'pass' : 'FAIL',
    detail: outcome.detail ?? '',
  }
}

/** A row of context with no target (velo/direct throughput, Portkey's own overhead, ...). */
export function infoRow(section: number, metric: string, value: number, unit: Unit, detail = ''): Row {
  return { section, metric, measured: formatValue(value, unit), goal: '', status: 'info', detail }
}

const HEADERS = ['#', 'metric', 'measured', 'target', 'result', 'detail'] as const

function cells(row: Row): string[] {
  return [String(row.section), row.metric, row.measured, row.goal, row.status, row.detail]
}

/** Columns padded to their widest cell, for the terminal. */
export function textTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((header, i) =>
    Math.max(header.length, ...rows.map((row) => (row[i] ?? '').length)),
  )
  const line = (row: readonly string[]) =>
    row
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd()
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n')
}

function escapeCell(cell: string): string {
  return cell.replaceAll('|', '\\|').replaceAll('\n', ' ')
}

export function markdownTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (row: readonly string[]) => `| ${row.map(escapeCell).join(' | ')} |`
  return [line(headers), line(headers.map(() => '---')), ...rows.map(line)].join('\n')
}

export function verdictText(rows: readonly Row[]): string {
  return textTable(HEADERS, rows.map(cells))
}

export function verdictMarkdown(rows: readonly Row[]): string {
  return markdownTable(HEADERS, rows.map(cells))
}

/** `7 pass, 1 FAIL, 2 pending` over the rows that have a target. */
export function tally(rows: readonly Row[]): string {
  const counts = new Map<Status, number>()
  for (const row of rows) if (row.status !== 'info') counts.set(row.status, (counts.get(row.status) ?? 0) + 1)
  const order: Status[] = ['pass', 'FAIL', 'ERROR', 'pending', 'not run']
  return order
    .filter((status) => counts.has(status))
    .map((status) => `${counts.get(status)} ${status}`)
    .join(', ')
}
