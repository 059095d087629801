import Table from 'cli-table3'
import { describeRegressions } from '../compare.js'
import { paramsLabel } from '../parse.js'
import type { BenchReport } from '../types.js'
import { describeEnvironment, describeTarget, describeWorkload, medianP99, num, pct } from './format.js'

/** The report as terminal tables: client-observed figures, then the engine's own, kept apart. */
export function renderTable(report: BenchReport): string {
  const out: string[] = [`target: ${describeTarget(report)}`, `machine: ${describeEnvironment(report)}`]
  if (report.rows.length > 0) {
    out.push(`workload: ${describeWorkload(report)}`)
    const slo = report.rows.some((row) => row.goodput !== undefined)
    const decode = report.rows.some((row) => row.decode !== undefined)
    const head = [
      'model',
      'c',
      'ok/err',
      'req/s',
      'out tok/s',
      'TTFT ms p50/p99',
      'ITL ms p50/p99',
      'TPOT ms p50',
      'e2e ms p50/p99',
      'engine pp t/s',
      'engine tg t/s',
      ...(slo ? ['goodput'] : []),
      ...(decode ? ['decode eff.'] : []),
    ]
    const table = new Table({ head, style: { head: [], border: [] } })
    for (const row of report.rows) {
      const params = paramsLabel(row.params)
      table.push([
        `${row.model}${params ? `\n${params}` : ''}${row.partial ? '\n(partial)' : ''}`,
        String(row.concurrency),
        `${row.requests.completed}/${row.requests.failed}`,
        num(row.client.requestsPerSec),
        num(row.client.outputTokensPerSec),
        medianP99(row.client.ttftMs),
        medianP99(row.client.itlMs),
        num(row.client.tpotMs?.median),
        medianP99(row.client.e2eMs),
        num(row.engine.promptTokensPerSec?.median),
        num(row.engine.generationTokensPerSec?.median),
        ...(slo
          ? [row.goodput ? `${num(row.goodput.requestsPerSec)}/s ${pct(row.goodput.fraction)}` : '-']
          : []),
        ...(decode ? [pct(row.decode?.efficiency)] : []),
      ])
    }
    out.push(table.toString())
  }
  if (report.micro.length > 0) {
    const table = new Table({
      head: ['model', 'test', 'source', 'threads', 't/s', '± sd'],
      style: { head: [], border: [] },
    })
    for (const result of report.micro) {
      const params = paramsLabel(result.params)
      table.push([
        `${result.model}${params ? ` ${params}` : ''}`,
        result.test,
        result.source,
        result.threads === undefined ? '-' : String(result.threads),
        num(result.tokensPerSec),
        num(result.stddev),
      ])
    }
    out.push(table.toString())
  }
  for (const row of report.rows) {
    for (const error of row.errors)
      out.push(`errors (${row.model} c=${row.concurrency}): ${error.count} × ${error.message}`)
  }
  if (report.comparison) {
    const comparison = report.comparison
    if (comparison.regressions.length === 0) {
      out.push(
        `baseline ${comparison.baseline}: no figure worse than ${comparison.thresholdPct}% beyond noise (${comparison.figures.length} compared)`,
      )
    } else {
      out.push(`baseline ${comparison.baseline}: ${comparison.regressions.length} regression(s):`)
      for (const line of describeRegressions(comparison)) out.push(`  ${line}`)
    }
    for (const key of comparison.missing) out.push(`  not measured this time: ${key}`)
  }
  if (report.aborted)
    out.push(`stopped early: ${report.aborted.message} (the rows above are what was measured)`)
  return out.join('\n')
}
