import { readFile } from 'node:fs/promises'
import { errorMessage, VeloError } from '../errors.js'
import { paramsLabel } from './parse.js'
import { median, robustSpread } from './stats.js'
import {
  BENCH_SCHEMA,
  type BenchReport,
  type BenchRow,
  type Comparison,
  type FigureComparison,
  type MicroResult,
  type RepetitionFigures,
} from './types.js'

/** The figures CI compares, and which way is better. */
const FIGURES: { key: keyof RepetitionFigures; name: string; better: 'higher' | 'lower' }[] = [
  { key: 'requestsPerSec', name: 'requests/s', better: 'higher' },
  { key: 'outputTokensPerSec', name: 'output tok/s', better: 'higher' },
  { key: 'totalTokensPerSec', name: 'total tok/s', better: 'higher' },
  { key: 'ttftMedianMs', name: 'TTFT median ms', better: 'lower' },
  { key: 'tpotMedianMs', name: 'TPOT median ms', better: 'lower' },
  { key: 'e2eMedianMs', name: 'e2e median ms', better: 'lower' },
  { key: 'engineGenerationTokensPerSec', name: 'engine gen tok/s', better: 'higher' },
  { key: 'enginePromptTokensPerSec', name: 'engine prompt tok/s', better: 'higher' },
  { key: 'goodputPerSec', name: 'goodput req/s', better: 'higher' },
]

/** How many standard errors apart two medians must be before a difference is more than noise. */
const NOISE_SIGMAS = 2

/** The standard error of a median is about this many times that of a mean (normal values). */
const MEDIAN_EFFICIENCY = 1.2533

export function rowKey(row: Pick<BenchRow, 'model' | 'concurrency' | 'params'>): string {
  const params = paramsLabel(row.params)
  return `${row.model} c=${row.concurrency}${params ? ` ${params}` : ''}`
}

function microKey(result: MicroResult): string {
  const params = paramsLabel(result.params)
  return `${result.model} ${result.test} (${result.source})${params ? ` ${params}` : ''}`
}

/**
 * Compare one figure: the median of each side's repetitions, worse by how many percent, and the noise:
 * the standard error of the difference between the two medians, from each side's spread over its
 * repetitions, in percent of the baseline. It regressed when it is worse by more than the threshold
 * and by more than twice the noise. Medians and spreads (median absolute deviation) are both robust,
 * so one wild repetition neither fails a build nor hides a regression by inflating the noise; a
 * noisy run, or one with few repetitions, has a wide noise band and fails only on large differences.
 */
export function compareFigure(
  row: string,
  figure: string,
  better: 'higher' | 'lower',
  baselineValues: number[],
  currentValues: number[],
  thresholdPct: number,
): FigureComparison | undefined {
  if (baselineValues.length === 0 || currentValues.length === 0) return undefined
  const baseline = median(baselineValues)
  const current = median(currentValues)
  if (!(baseline > 0)) return undefined
  const worsePct = ((better === 'higher' ? baseline - current : current - baseline) / baseline) * 100
  const standardError =
    MEDIAN_EFFICIENCY *
    Math.sqrt(
      robustSpread(baselineValues) ** 2 / baselineValues.length +
        robustSpread(currentValues) ** 2 / currentValues.length,
    )
  const noisePct = (standardError / baseline) * 100
  return {
    row,
    figure,
    better,
    baseline,
    current,
    worsePct,
    noisePct,
    regressed: worsePct > thresholdPct && worsePct > NOISE_SIGMAS * noisePct,
  }
}

function values(rows: RepetitionFigures[], key: keyof RepetitionFigures): number[] {
  return rows
    .map((row) => row[key])
    .filter((value): value is number => value !== undefined && Number.isFinite(value))
}

/** Compare a run with a baseline report, row by row (same model, concurrency and parameters). */
export function compareReports(
  current: BenchReport,
  baseline: BenchReport,
  thresholdPct: number,
  baselineName = 'baseline',
): Comparison {
  const figures: FigureComparison[] = []
  const missing: string[] = []
  const currentRows = new Map(current.rows.map((row) => [rowKey(row), row]))
  for (const baseRow of baseline.rows) {
    const key = rowKey(baseRow)
    const row = currentRows.get(key)
    if (!row) {
      missing.push(key)
      continue
    }
    for (const figure of FIGURES) {
      const result = compareFigure(
        key,
        figure.name,
        figure.better,
        values(baseRow.perRepetition, figure.key),
        values(row.perRepetition, figure.key),
        thresholdPct,
      )
      if (result) figures.push(result)
    }
  }
  const currentMicro = new Map(current.micro.map((result) => [microKey(result), result]))
  for (const baseResult of baseline.micro) {
    const key = microKey(baseResult)
    const result = currentMicro.get(key)
    if (!result) {
      missing.push(key)
      continue
    }
    const compared = compareFigure(key, 'tok/s', 'higher', baseResult.samples, result.samples, thresholdPct)
    if (compared) figures.push(compared)
  }
  return {
    baseline: baselineName,
    thresholdPct,
    figures,
    regressions: figures.filter((figure) => figure.regressed),
    missing,
  }
}

/** Read a previous `velo bench --json` result; errors name `flag` (`--baseline`, `--result`). */
export async function loadBaseline(path: string, flag = '--baseline'): Promise<BenchReport> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    throw new VeloError('VELO_BAD_REQUEST', `${flag}: cannot read ${path}: ${errorMessage(error)}`)
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    throw new VeloError('VELO_BAD_REQUEST', `${flag} ${path}: not valid JSON`, {
      suggestion: 'write the baseline with `velo bench --json > baseline.json`',
    })
  }
  const report = parsed as Partial<BenchReport>
  if (report.schema !== BENCH_SCHEMA || !Array.isArray(report.rows) || !Array.isArray(report.micro)) {
    throw new VeloError(
      'VELO_BAD_REQUEST',
      `${flag} ${path}: not a velo bench report (schema ${BENCH_SCHEMA})`,
      {
        suggestion: 'write the baseline with `velo bench --json > baseline.json`',
      },
    )
  }
  for (const [index, row] of report.rows.entries()) {
    if (!row || typeof row.model !== 'string' || !Array.isArray(row.perRepetition)) {
      throw new VeloError('VELO_BAD_REQUEST', `${flag} ${path}: rows[${index}] is not a bench row`)
    }
  }
  return report as BenchReport
}

/** Lines that say what regressed and by how much. */
export function describeRegressions(comparison: Comparison): string[] {
  return comparison.regressions.map(
    (figure) =>
      `${figure.row}: ${figure.figure} ${formatNumber(figure.current)} vs ${formatNumber(figure.baseline)} ` +
      `(${figure.worsePct.toFixed(1)}% worse; threshold ${comparison.thresholdPct}%, noise ±${figure.noisePct.toFixed(1)}%)`,
  )
}

function formatNumber(value: number): string {
  return Math.abs(value) >= 100 ? value.toFixed(0) : value.toFixed(2)
}
