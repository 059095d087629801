import { appendFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { loadConfig } from '../config/load.js'
import { parseDuration } from '../config/units.js'
import { VeloError } from '../errors.js'
import { writeFileAtomic } from '../fs-atomic.js'
import { compareReports, describeRegressions, loadBaseline } from './compare.js'
import { parseBandwidth, parseConcurrency, parseSlo, parseSweep } from './parse.js'
import { renderCsv, renderHtml, renderMarkdown } from './report/index.js'
import { runBench } from './run.js'
import type { BenchOptions, BenchReport, MicroOptions, ProgressListener } from './types.js'

/** `velo bench`'s flags as the command parsed them (text where the core does the parsing). */
export interface BenchCliInput {
  url?: string | undefined
  api?: 'ollama' | 'openai' | undefined
  model: string[]
  gguf?: string | undefined
  serverArgs?: string | undefined
  /** velo.yaml to read `engine.llamaServer` from when velo starts llama-server (`--gguf`). */
  config?: string | undefined
  concurrency: string
  requests?: number | undefined
  duration?: string | undefined
  rate?: string | undefined
  arrivals: 'poisson' | 'constant'
  promptTokens: number
  genTokens: number
  warmup: number
  repetitions: number
  set: string[]
  dataset?: string | undefined
  sharedPrefix?: number | undefined
  slo?: string | undefined
  bandwidth: string
  micro: boolean
  microTests: string
  llamaBench: boolean
  csv?: string | undefined
  md?: string | undefined
  html?: string | undefined
  baseline?: string | undefined
  /** An earlier `--json` result to report on (and compare) instead of measuring. */
  result?: string | undefined
  failOnRegression?: number | undefined
  timeout: string
  seed?: number | undefined
  temperature?: string | undefined
  signal?: AbortSignal | undefined
}

export interface BenchCliResult {
  report: BenchReport
  /** Files written (csv, md, html), absolute. */
  written: string[]
  /** Lines naming each regressed figure and by how much. */
  regressions: string[]
  /** The run should exit non-zero: it stopped early, or regressed with --fail-on-regression. */
  failed: boolean
}

function bad(message: string): VeloError {
  return new VeloError('VELO_BAD_REQUEST', message)
}

/** `pp512,tg128` -> prompt and generation lengths. */
export function parseMicroTests(input: string, llamaBench: boolean): MicroOptions {
  const micro: MicroOptions = { promptTokens: [], genTokens: [], llamaBench }
  for (const part of input.split(',').map((text) => text.trim())) {
    if (!part) continue
    const match = /^(pp|tg)(\d+)$/.exec(part)
    const tokens = Number(match?.[2])
    if (!match || !(tokens > 0)) throw bad(`--micro-tests: expected tests like pp512,tg128, got "${part}"`)
    if (match[1] === 'pp') micro.promptTokens.push(tokens)
    else micro.genTokens.push(tokens)
  }
  if (micro.promptTokens.length + micro.genTokens.length === 0)
    throw bad('--micro-tests: expected at least one test like tg128')
  return micro
}

function duration(value: string, flag: string): number {
  const ms = parseDuration(value)
  if (ms === undefined || ms <= 0) throw bad(`${flag}: expected a duration like 30s or 2m, got "${value}"`)
  return ms
}

function number(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined
  const parsed = Number(value)
  if (!Number.isFinite(parsed)) throw bad(`${flag}: expected a number, got "${value}"`)
  return parsed
}

function checkComparison(input: BenchCliInput): void {
  if (input.failOnRegression !== undefined && input.baseline === undefined) {
    throw bad('--fail-on-regression: needs --baseline FILE to compare with')
  }
  if (input.failOnRegression !== undefined && !(input.failOnRegression >= 0)) {
    throw bad(`--fail-on-regression: expected a percentage of 0 or more, got ${input.failOnRegression}`)
  }
}

/** Turn the command's flags into runBench options, with errors that name the flag. */
export function toBenchOptions(input: BenchCliInput): BenchOptions {
  checkComparison(input)
  const managed =
    input.gguf === undefined
      ? undefined
      : {
          gguf: resolve(input.gguf),
          args: input.serverArgs?.split(/\s+/).filter(Boolean) ?? [],
        }
  if (input.serverArgs !== undefined && managed === undefined)
    throw bad('--server-args: needs --gguf (velo starts llama-server)')
  return {
    url: input.url,
    api: input.api,
    managed,
    models: input.model,
    concurrency: parseConcurrency(input.concurrency),
    requests: input.requests,
    durationMs: input.duration === undefined ? undefined : duration(input.duration, '--duration'),
    rate: number(input.rate, '--rate'),
    arrivals: input.arrivals,
    promptTokens: input.promptTokens,
    genTokens: input.genTokens,
    warmup: input.warmup,
    repetitions: input.repetitions,
    dataset: input.dataset === undefined ? undefined : resolve(input.dataset),
    sharedPrefixTokens: input.sharedPrefix,
    sweep: parseSweep(input.set, managed !== undefined),
    slo: input.slo === undefined ? undefined : parseSlo(input.slo),
    bandwidth: parseBandwidth(input.bandwidth),
    micro: input.micro
      ? parseMicroTests(input.microTests, input.llamaBench && managed !== undefined)
      : undefined,
    temperature: number(input.temperature, '--temperature'),
    seed: input.seed,
    timeoutMs: duration(input.timeout, '--timeout'),
    signal: input.signal,
  }
}

/** Measure as the flags say: the server at --url, or a llama-server velo starts from --gguf. */
async function measure(input: BenchCliInput, onProgress?: ProgressListener): Promise<BenchReport> {
  const options = toBenchOptions(input)
  if (options.managed) {
    // The same llama-server as every other velo command: engine.llamaServer from the config first.
    const { config } = await loadConfig(input.config)
    options.managed.serverPath ??= config.engine.llamaServer
  }
  return runBench(options, onProgress)
}

/**
 * What `velo bench` does: run (or, with --result, take an earlier run's report), compare with the
 * baseline, write the --csv/--md/--html files (also after a run that stopped early, with what it
 * measured), and append the Markdown to `$GITHUB_STEP_SUMMARY` when that is set.
 */
export async function benchFromCli(
  input: BenchCliInput,
  onProgress?: ProgressListener,
): Promise<BenchCliResult> {
  if (input.result !== undefined && (input.url !== undefined || input.gguf !== undefined)) {
    throw bad('--result: give an earlier result or a server to measure (--url, --gguf), not both')
  }
  checkComparison(input)
  // Read the baseline before measuring, so a bad file fails in a second, not after the run.
  const baseline = input.baseline === undefined ? undefined : await loadBaseline(input.baseline)
  const report =
    input.result === undefined
      ? await measure(input, onProgress)
      : await loadBaseline(input.result, '--result')
  let regressions: string[] = []
  if (baseline && input.baseline) {
    report.comparison = compareReports(report, baseline, input.failOnRegression ?? 10, input.baseline)
    regressions = describeRegressions(report.comparison)
  }
  const written: string[] = []
  const write = async (path: string | undefined, text: string) => {
    if (path === undefined) return
    const absolute = resolve(path)
    await writeFileAtomic(absolute, text)
    written.push(absolute)
  }
  await write(input.csv, renderCsv(report))
  const markdown = renderMarkdown(report)
  await write(input.md, markdown)
  await write(input.html, renderHtml(report))
  const summary = process.env['GITHUB_STEP_SUMMARY']
  if (input.md !== undefined && summary) await appendFile(summary, `${markdown}\n`)
  const regressed = input.failOnRegression !== undefined && regressions.length > 0
  return { report, written, regressions, failed: report.aborted !== undefined || regressed }
}
