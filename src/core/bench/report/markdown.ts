import { describeRegressions } from '../compare.js'
import { paramsLabel } from '../parse.js'
import type { BenchReport } from '../types.js'
import { describeEnvironment, describeTarget, describeWorkload, medianP99, num, pct } from './format.js'

function escapeCell(text: string): string {
  return text.replace(/\|/g, '\\|')
}

function table(head: string[], rows: string[][]): string {
  return [
    `| ${head.join(' | ')} |`,
    `| ${head.map(() => '---').join(' | ')} |`,
    ...rows.map((row) => `| ${row.map(escapeCell).join(' | ')} |`),
  ].join('\n')
}

/** The report as GitHub-flavoured Markdown (what `--md` writes and `$GITHUB_STEP_SUMMARY` gets). */
export function renderMarkdown(report: BenchReport): string {
  const out: string[] = [
    '## velo bench',
    '',
    `- target: ${describeTarget(report)}`,
    `- machine: ${describeEnvironment(report)}`,
  ]
  if (report.rows.length > 0) out.push(`- workload: ${describeWorkload(report)}`)
  out.push('')
  if (report.rows.length > 0) {
    out.push(
      table(
        [
          'model',
          'params',
          'c',
          'ok',
          'err',
          'req/s',
          'out tok/s',
          'TTFT ms p50/p99',
          'ITL ms p50/p99',
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
          medianP99(row.client.ttftMs),
          medianP99(row.client.itlMs),
          medianP99(row.client.e2eMs),
          num(row.engine.promptTokensPerSec?.median),
          num(row.engine.generationTokensPerSec?.median),
          row.goodput ? `${num(row.goodput.requestsPerSec)}/s (${pct(row.goodput.fraction)})` : '-',
          pct(row.decode?.efficiency),
        ]),
      ),
      '',
    )
  }
  if (report.micro.length > 0) {
    out.push(
      table(
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
      '',
    )
  }
  if (report.comparison) {
    const comparison = report.comparison
    if (comparison.regressions.length === 0) {
      out.push(
        `**Baseline** ${comparison.baseline}: no regression beyond ${comparison.thresholdPct}% and the noise.`,
        '',
      )
    } else {
      out.push(`**Regressions** against ${comparison.baseline}:`, '')
      for (const line of describeRegressions(comparison)) out.push(`- ${line}`)
      out.push('')
    }
  }
  if (report.aborted) out.push(`**Stopped early:** ${report.aborted.message}`, '')
  return out.join('\n')
}
