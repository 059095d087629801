import { paramsLabel } from '../parse.js'
import type { BenchReport, BenchRow, Summary } from '../types.js'

function cell(value: string | number | boolean | undefined): string {
  if (value === undefined) return ''
  const text =
    typeof value === 'number'
      ? Number.isFinite(value)
        ? String(Number(value.toPrecision(6)))
        : ''
      : String(value)
  return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text
}

const STATS = ['mean', 'median', 'p90', 'p99', 'stddev'] as const

function summaryColumns(prefix: string): string[] {
  return STATS.map((stat) => `${prefix}_${stat}`)
}

function summaryCells(summary: Summary | undefined): (number | undefined)[] {
  return STATS.map((stat) => summary?.[stat])
}

const ROW_HEADER = [
  'model',
  'params',
  'concurrency',
  'rate',
  'repetitions',
  'partial',
  'requests',
  'completed',
  'failed',
  'duration_s',
  'requests_per_s',
  'output_tokens_per_s',
  'total_tokens_per_s',
  ...summaryColumns('ttft_ms'),
  ...summaryColumns('itl_ms'),
  ...summaryColumns('tpot_ms'),
  ...summaryColumns('e2e_ms'),
  ...summaryColumns('engine_prompt_tokens_per_s'),
  ...summaryColumns('engine_generation_tokens_per_s'),
  'prompt_tokens_mean',
  'output_tokens_mean',
  'cached_prompt_tokens_mean',
  'goodput_requests_per_s',
  'goodput_fraction',
  'decode_bound_tokens_per_s',
  'decode_efficiency',
  'errors',
]

function rowCells(row: BenchRow): (string | number | boolean | undefined)[] {
  return [
    row.model,
    paramsLabel(row.params),
    row.concurrency,
    row.rate,
    row.repetitions,
    row.partial,
    row.requests.total,
    row.requests.completed,
    row.requests.failed,
    row.durationSec,
    row.client.requestsPerSec,
    row.client.outputTokensPerSec,
    row.client.totalTokensPerSec,
    ...summaryCells(row.client.ttftMs),
    ...summaryCells(row.client.itlMs),
    ...summaryCells(row.client.tpotMs),
    ...summaryCells(row.client.e2eMs),
    ...summaryCells(row.engine.promptTokensPerSec),
    ...summaryCells(row.engine.generationTokensPerSec),
    row.tokens.prompt?.mean,
    row.tokens.output?.mean,
    row.tokens.cachedPrompt?.mean,
    row.goodput?.requestsPerSec,
    row.goodput?.fraction,
    row.decode?.boundTokensPerSec,
    row.decode?.efficiency,
    row.errors.map((error) => `${error.count}x ${error.message}`).join('; '),
  ]
}

const MICRO_HEADER = ['model', 'params', 'test', 'source', 'threads', 'tokens_per_s', 'stddev', 'samples']

/** One line per row (or per microbenchmark result in --micro mode), figures unformatted. */
export function renderCsv(report: BenchReport): string {
  const lines: string[] = []
  if (report.rows.length > 0 || report.micro.length === 0) {
    lines.push(ROW_HEADER.join(','))
    for (const row of report.rows) lines.push(rowCells(row).map(cell).join(','))
  } else {
    lines.push(MICRO_HEADER.join(','))
    for (const result of report.micro) {
      lines.push(
        [
          result.model,
          paramsLabel(result.params),
          result.test,
          result.source,
          result.threads,
          result.tokensPerSec,
          result.stddev,
          result.samples.map((sample) => sample.toFixed(2)).join(' '),
        ]
          .map(cell)
          .join(','),
      )
    }
  }
  return `${lines.join('\n')}\n`
}
