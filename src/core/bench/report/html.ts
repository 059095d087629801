/**
 * One self-contained HTML page: the tables plus inline SVG charts (throughput against concurrency,
 * latency percentiles, TTFT distribution, microbenchmarks). No scripts, fonts or styles from
 * elsewhere, so it opens offline and can be kept as a CI artifact.
 */
import { histogram } from '../stats.js'
import type { BenchReport, BenchRow, Summary } from '../types.js'
import { renderFiguresHtml } from './figures-html.js'
import { describeEnvironment, describeTarget, describeWorkload, rowLabel } from './format.js'

const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#ca8a04', '#db2777']
const WIDTH = 640
const HEIGHT = 300
const MARGIN = { top: 30, right: 20, bottom: 48, left: 64 }

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`)
}

function color(index: number): string {
  return COLORS[index % COLORS.length] ?? '#2563eb'
}

function niceMax(value: number): number {
  if (!(value > 0)) return 1
  const power = 10 ** Math.floor(Math.log10(value))
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power
  return 10 * power
}

function label(value: number): string {
  if (value >= 1000) return `${Number((value / 1000).toFixed(value >= 10_000 ? 0 : 1))}k`
  if (Number.isInteger(value)) return String(value)
  return String(Number(value.toFixed(value >= 10 ? 1 : 2)))
}

/** Frame, y grid with labels, axis titles. Returns the SVG start and a y scale. */
function frame(title: string, yTitle: string, xTitle: string, yMax: number) {
  const plotW = WIDTH - MARGIN.left - MARGIN.right
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom
  const top = niceMax(yMax)
  const y = (value: number) => MARGIN.top + plotH - (value / top) * plotH
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${WIDTH} ${HEIGHT}" width="${WIDTH}" height="${HEIGHT}" role="img" aria-label="${escapeHtml(title)}">`,
    `<text x="${WIDTH / 2}" y="18" text-anchor="middle" font-size="14" font-weight="600" fill="#111">${escapeHtml(title)}</text>`,
  ]
  for (let tick = 0; tick <= 4; tick += 1) {
    const value = (top / 4) * tick
    parts.push(
      `<line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${y(value)}" y2="${y(value)}" stroke="#e5e7eb"/>`,
      `<text x="${MARGIN.left - 6}" y="${y(value) + 4}" text-anchor="end" font-size="11" fill="#555">${label(value)}</text>`,
    )
  }
  parts.push(
    `<text x="14" y="${MARGIN.top + plotH / 2}" transform="rotate(-90 14 ${MARGIN.top + plotH / 2})" text-anchor="middle" font-size="12" fill="#333">${escapeHtml(yTitle)}</text>`,
    `<text x="${MARGIN.left + plotW / 2}" y="${HEIGHT - 8}" text-anchor="middle" font-size="12" fill="#333">${escapeHtml(xTitle)}</text>`,
  )
  return { parts, y, plotW, plotH }
}

function legend(names: string[]): string {
  return `<div class="legend">${names
    .map((name, index) => `<span><i style="background:${color(index)}"></i>${escapeHtml(name)}</span>`)
    .join('')}</div>`
}

interface Series {
  name: string
  points: { x: number; y: number }[]
}

/** Lines over concurrency levels (x spaced evenly by level, labelled with the level). */
export function lineChart(id: string, title: string, yTitle: string, series: Series[]): string {
  const xs = [...new Set(series.flatMap((entry) => entry.points.map((point) => point.x)))].sort(
    (a, b) => a - b,
  )
  const yMax = Math.max(0, ...series.flatMap((entry) => entry.points.map((point) => point.y)))
  const { parts, y, plotW, plotH } = frame(title, yTitle, 'concurrency', yMax)
  const x = (value: number) =>
    MARGIN.left + (xs.length <= 1 ? plotW / 2 : (xs.indexOf(value) / (xs.length - 1)) * plotW)
  for (const value of xs) {
    parts.push(
      `<text x="${x(value)}" y="${MARGIN.top + plotH + 16}" text-anchor="middle" font-size="11" fill="#555">${value}</text>`,
    )
  }
  series.forEach((entry, index) => {
    const points = [...entry.points].sort((a, b) => a.x - b.x)
    parts.push(
      `<polyline fill="none" stroke="${color(index)}" stroke-width="2" points="${points.map((point) => `${x(point.x).toFixed(1)},${y(point.y).toFixed(1)}`).join(' ')}"/>`,
    )
    for (const point of points) {
      parts.push(
        `<circle cx="${x(point.x).toFixed(1)}" cy="${y(point.y).toFixed(1)}" r="3.5" fill="${color(index)}"><title>${escapeHtml(entry.name)} c=${point.x}: ${label(point.y)}</title></circle>`,
      )
    }
  })
  parts.push('</svg>')
  return `<figure class="chart" data-chart="${id}">${parts.join('')}${legend(series.map((entry) => entry.name))}</figure>`
}

interface BarGroup {
  name: string
  values: { name: string; value: number }[]
}

/** Groups of bars (one group per row, one bar per percentile). */
export function barChart(id: string, title: string, yTitle: string, groups: BarGroup[]): string {
  const names = groups[0]?.values.map((value) => value.name) ?? []
  const yMax = Math.max(0, ...groups.flatMap((group) => group.values.map((value) => value.value)))
  const { parts, y, plotW, plotH } = frame(title, yTitle, '', yMax)
  const groupW = plotW / Math.max(1, groups.length)
  const barW = Math.max(2, (groupW * 0.8) / Math.max(1, names.length))
  groups.forEach((group, groupIndex) => {
    const left = MARGIN.left + groupIndex * groupW + groupW * 0.1
    group.values.forEach((value, index) => {
      const top = y(value.value)
      parts.push(
        `<rect x="${(left + index * barW).toFixed(1)}" y="${top.toFixed(1)}" width="${(barW - 1).toFixed(1)}" height="${(MARGIN.top + plotH - top).toFixed(1)}" fill="${color(index)}"><title>${escapeHtml(group.name)} ${escapeHtml(value.name)}: ${label(value.value)}</title></rect>`,
      )
    })
    parts.push(
      `<text x="${(left + groupW * 0.4).toFixed(1)}" y="${MARGIN.top + plotH + 16}" text-anchor="middle" font-size="11" fill="#555">${escapeHtml(group.name.length > 28 ? `${group.name.slice(0, 27)}…` : group.name)}</text>`,
    )
  })
  parts.push('</svg>')
  return `<figure class="chart" data-chart="${id}">${parts.join('')}${legend(names)}</figure>`
}

/** A histogram of one row's TTFT samples. */
export function histogramChart(id: string, title: string, samples: number[], colorIndex: number): string {
  const buckets = histogram(samples, Math.min(20, Math.max(5, Math.ceil(Math.sqrt(samples.length)))))
  const yMax = Math.max(0, ...buckets.map((bucket) => bucket.count))
  const { parts, y, plotW, plotH } = frame(title, 'requests', 'TTFT ms', yMax)
  const barW = plotW / Math.max(1, buckets.length)
  buckets.forEach((bucket, index) => {
    const top = y(bucket.count)
    parts.push(
      `<rect x="${(MARGIN.left + index * barW).toFixed(1)}" y="${top.toFixed(1)}" width="${Math.max(1, barW - 1).toFixed(1)}" height="${(MARGIN.top + plotH - top).toFixed(1)}" fill="${color(colorIndex)}"><title>${label(bucket.from)}–${label(bucket.to)} ms: ${bucket.count}</title></rect>`,
    )
  })
  const first = buckets[0]
  const last = buckets[buckets.length - 1]
  if (first && last) {
    parts.push(
      `<text x="${MARGIN.left}" y="${MARGIN.top + plotH + 16}" font-size="11" fill="#555">${label(first.from)}</text>`,
      `<text x="${WIDTH - MARGIN.right}" y="${MARGIN.top + plotH + 16}" text-anchor="end" font-size="11" fill="#555">${label(last.to)}</text>`,
    )
  }
  parts.push('</svg>')
  return `<figure class="chart" data-chart="${id}">${parts.join('')}</figure>`
}

function seriesKey(row: BenchRow): string {
  return rowLabel(row)
}

function percentiles(summary: Summary | undefined): { name: string; value: number }[] {
  return [
    { name: 'p50', value: summary?.median ?? 0 },
    { name: 'p90', value: summary?.p90 ?? 0 },
    { name: 'p99', value: summary?.p99 ?? 0 },
  ]
}

function throughputSeries(rows: BenchRow[], pick: (row: BenchRow) => number): Series[] {
  const byKey = new Map<string, Series>()
  for (const row of rows) {
    const key = seriesKey(row)
    const series = byKey.get(key) ?? { name: key, points: [] }
    series.points.push({ x: row.concurrency, y: pick(row) })
    byKey.set(key, series)
  }
  return [...byKey.values()]
}

const STYLE = `
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:24px auto;max-width:1100px;color:#111;padding:0 16px}
h1{font-size:22px;margin:0 0 8px}h2{font-size:17px;margin:28px 0 8px}
.meta{color:#444;margin:2px 0}
table{border-collapse:collapse;margin:8px 0;font-size:13px}th,td{border:1px solid #ddd;padding:4px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f4f4f5}
.charts{display:flex;flex-wrap:wrap;gap:16px}figure.chart{margin:0;border:1px solid #e4e4e7;border-radius:6px;padding:8px;background:#fff}
svg{font-family:system-ui,-apple-system,Segoe UI,sans-serif}
.legend{font-size:12px;display:flex;flex-wrap:wrap;gap:10px;margin-top:4px}.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
.bad{color:#b91c1c}.good{color:#15803d}`

/** The whole page. */
export function renderHtml(report: BenchReport): string {
  const body: string[] = [
    '<h1>velo bench</h1>',
    `<p class="meta">target: ${escapeHtml(describeTarget(report))}</p>`,
    `<p class="meta">machine: ${escapeHtml(describeEnvironment(report))}</p>`,
    `<p class="meta">started ${escapeHtml(report.startedAt)}, finished ${escapeHtml(report.finishedAt)}</p>`,
  ]
  if (report.aborted)
    body.push(`<p class="bad"><b>Stopped early:</b> ${escapeHtml(report.aborted.message)}</p>`)
  if (report.rows.length > 0) {
    body.push(`<p class="meta">workload: ${escapeHtml(describeWorkload(report))}</p>`)
    const charts = [
      lineChart(
        'throughput',
        'Output tokens/s by concurrency',
        'tokens/s',
        throughputSeries(report.rows, (row) => row.client.outputTokensPerSec),
      ),
      lineChart(
        'requests',
        'Requests/s by concurrency',
        'requests/s',
        throughputSeries(report.rows, (row) => row.client.requestsPerSec),
      ),
      barChart(
        'ttft-percentiles',
        'TTFT percentiles',
        'ms',
        report.rows.map((row) => ({
          name: `${rowLabel(row)} c=${row.concurrency}`,
          values: percentiles(row.client.ttftMs),
        })),
      ),
      barChart(
        'e2e-percentiles',
        'End-to-end latency percentiles',
        'ms',
        report.rows.map((row) => ({
          name: `${rowLabel(row)} c=${row.concurrency}`,
          values: percentiles(row.client.e2eMs),
        })),
      ),
      barChart(
        'itl-percentiles',
        'Inter-token latency percentiles',
        'ms',
        report.rows.map((row) => ({
          name: `${rowLabel(row)} c=${row.concurrency}`,
          values: percentiles(row.client.itlMs),
        })),
      ),
    ]
    body.push('<h2>Charts</h2>', `<div class="charts">${charts.join('')}</div>`)
    body.push('<h2>TTFT distribution</h2>')
    body.push(
      `<div class="charts">${report.rows
        .filter((row) => row.samples.ttftMs.length > 0)
        .map((row, index) =>
          histogramChart(
            `ttft-histogram-${index}`,
            `TTFT — ${rowLabel(row)} c=${row.concurrency}`,
            row.samples.ttftMs,
            index,
          ),
        )
        .join('')}</div>`,
    )
  }
  if (report.micro.length > 0) {
    body.push(
      '<h2>Microbenchmarks</h2>',
      `<div class="charts">${barChart(
        'micro',
        'Tokens/s by test',
        'tokens/s',
        [...new Set(report.micro.map((result) => `${result.model} ${result.test}`))].map((name) => ({
          name,
          values: ['engine', 'client', 'llama-bench']
            .filter((source) => report.micro.some((result) => result.source === source))
            .map((source) => ({
              name: source,
              value:
                report.micro.find(
                  (result) => `${result.model} ${result.test}` === name && result.source === source,
                )?.tokensPerSec ?? 0,
            })),
        })),
      )}</div>`,
    )
  }
  body.push('<h2>Figures</h2>', renderFiguresHtml(report))
  if (report.comparison) {
    const comparison = report.comparison
    body.push(`<h2>Against ${escapeHtml(comparison.baseline)}</h2>`)
    body.push(
      comparison.regressions.length === 0
        ? `<p class="good">No figure worse than ${comparison.thresholdPct}% beyond the noise (${comparison.figures.length} compared).</p>`
        : `<ul class="bad">${comparison.regressions
            .map(
              (figure) =>
                `<li>${escapeHtml(`${figure.row}: ${figure.figure} ${label(figure.current)} vs ${label(figure.baseline)} (${figure.worsePct.toFixed(1)}% worse)`)}</li>`,
            )
            .join('')}</ul>`,
    )
  }
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>velo bench — ${escapeHtml(report.startedAt)}</title>
<style>${STYLE}</style>
</head>
<body>
${body.join('\n')}
<script type="application/json" id="velo-bench-report">${JSON.stringify(report).replace(/</g, '\\u003c')}</script>
</body>
</html>
`
}
