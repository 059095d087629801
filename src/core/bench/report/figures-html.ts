import { paramsLabel } from '../parse.js'
import type { BenchReport } from '../types.js'
import { medianP99, num, pct } from './format.js'

function escapeCell(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`)
}

function htmlTable(head: string[], rows: string[][]): string {
  return `<table><thead><tr>${head.map((cell) => `<th>${escapeCell(cell)}</th>`).join('')}</tr></thead><tbody>${rows
    .map((row) => `<tr>${row.map((cell) => `<td>${escapeCell(cell)}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`
}

/** The figures tables of the HTML page: client-observed and engine-reported columns side by side. */
export function renderFiguresHtml(report: BenchReport): string {
  const parts: string[] = []
  if (report.rows.length > 0) {
    parts.push(
      htmlTable(
        [
          'model',
          'params',
          'c',
          'ok',
          'err',
          'req/s',
          'out tok/s',
          'total tok/s',
          'TTFT ms p50/p99',
          'ITL ms p50/p99',
          'TPOT ms p50',
          'e2e ms p50/p99',
          'engine pp t/s',
          'engine tg t/s',
          'goodput',
          'decode eff.',
        ],
        report.rows.map((row) => [
          row.model + (row.partial ? ' (partial)' : ''),
          paramsLabel(row.params) || '-',
          String(row.concurrency),
          String(row.requests.completed),
          String(row.requests.failed),
          num(row.client.requestsPerSec),
          num(row.client.outputTokensPerSec),
          num(row.client.totalTokensPerSec),
          medianP99(row.client.ttftMs),
          medianP99(row.client.itlMs),
          num(row.client.tpotMs?.median),
          medianP99(row.client.e2eMs),
          num(row.engine.promptTokensPerSec?.median),
          num(row.engine.generationTokensPerSec?.median),
          row.goodput ? `${num(row.goodput.requestsPerSec)}/s (${pct(row.goodput.fraction)})` : '-',
          pct(row.decode?.efficiency),
        ]),
      ),
    )
  }
  if (report.micro.length > 0) {
    parts.push(
      htmlTable(
        ['model', 'params', 'test', 'source', 'threads', 't/s', '± sd'],
        report.micro.map((result) => [
          result.model,
          paramsLabel(result.params) || '-',
          result.test,
          result.source,
          result.threads === undefined ? '-' : String(result.threads),
          num(result.tokensPerSec),
          num(result.stddev),
        ]),
      ),
    )
  }
  return parts.join('\n')
}
