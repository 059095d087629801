import { mkdir, readFile } from 'node:fs/promises'
import { cpus, loadavg, totalmem } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import type { BenchCliInput } from '../src/core/bench/cli.js'
import { benchFromCli } from '../src/core/bench/cli.js'
import { parseDuration } from '../src/core/config/units.js'
import { findRigOllama, startOllamaServe } from '../src/core/engine/ollama-serve.js'
import { engineVersion, requireEngine } from '../src/core/engine/resolve.js'
import { errorMessage, VeloError } from '../src/core/errors.js'
import { ensureSynthModel } from '../src/core/models/synth.js'
import type { Workload } from '../src/core/optimize/measure.js'
import {
  type OptimizeEvent,
  type OptimizePlan,
  type OptimizeResult,
  optimize,
  planOptimize,
} from '../src/core/optimize/optimize.js'
import { measureQuietly, type QuietOptions, WAIT_IDLE_DEFAULTS } from '../src/core/optimize/quiet.js'
import { eventLine } from '../src/core/optimize/render.js'
import { candidateKey, complete, describeCandidate, enumerateGrid } from '../src/core/optimize/space.js'
import { summarize } from '../src/core/optimize/stats.js'
import {
  type Measurement,
  type RunIdentity,
  TrialLog,
  type TrialRecord,
  trialRecordSchema,
} from '../src/core/optimize/trial-log.js'
import { cacheDir } from '../src/core/paths.js'
import { parametersToLlamaServerArgs, parametersToOllamaOptions } from '../src/core/profiles/export.js'
import type { Parameters } from '../src/core/profiles/schema.js'
import {
  alternate,
  judgeSearch,
  measuredSpeedup,
  type SearchVerdict,
  type Spread,
  shuffled,
  speedupLines,
  verdictLines,
  withinNoise,
} from './optimize-verdict.js'

const USAGE = `npx tsx bench/optimize-vs-grid.ts [options]

  --backend B          llama-server, ollama or both (default both)
  --concurrency N      streams at once (default 4)
  --max-trials N       optimize's trial budget (default 30, as velo optimize)
  --axes a,b           search only these axes, in optimize and the grid alike
                       (gpuLayers, threads, parallel, flashAttention, kvCache, ubatch, batch)
  --rounds N           head-to-head rounds of optimize's pick and the grid's leaders (default 4)
  --grid-leaders N     the grid's best N configurations re-measured head to head (default 3)
  --bench-runs N       velo bench runs of the defaults and of the profile each (default 4)
  --fresh              measure everything again instead of continuing the logs of an interrupted run
  --reuse-grid         take the grid from the last finished run with the same settings instead of
                       measuring it again (optimize, the head to head and velo bench still run)
  --ollama-workload P,G,T
                       Ollama's prompt tokens, generated tokens and p99 TTFT bound (default: the same
                       workload as llama-server's, optimize's defaults; for an Ollama built without
                       SIMD, about 7 tokens/s here, use 64,16,2m: velo bench needs more prompt
                       tokens than the chat template's 35)
  --seed N             order of the grid (default 1)
  --max-wait D         how long a trial waits for an idle machine before it runs anyway (default 5m)
  --no-wait-idle       measure even while other processes keep the CPUs busy (by default every
                       trial, optimize's included, waits for an idle machine and is repeated when
                       other work disturbed it: velo optimize --wait-idle)`

interface Settings {
  backends: Array<'llama-server' | 'ollama'>
  concurrency: number
  maxTrials: number
  axes: string[] | undefined
  rounds: number
  gridLeaders: number
  benchRuns: number
  fresh: boolean
  reuseGrid: boolean
  ollamaWorkload: { promptTokens: number; genTokens: number; maxTtftMs: number } | undefined
  seed: number
  waitIdle: boolean
  maxWaitMs: number
}

function positive(value: string | undefined, fallback: number, flag: string): number {
  if (value === undefined) return fallback
  const parsed = Number(value)
  if (!Number.isInteger(parsed) || parsed < 1)
    throw new Error(`${flag}: expected a positive whole number, got "${value}"`)
  return parsed
}

function waitLimit(value: string | undefined): number {
  if (value === undefined) return 5 * 60_000
  const ms = parseDuration(value)
  if (ms === undefined || ms < 0)
    throw new Error(`--max-wait: expected a duration like 90s or 5m, got "${value}"`)
  return ms
}

function ollamaWorkload(value: string): Settings['ollamaWorkload'] {
  const [prompt, gen, ttft] = value.split(',').map((part) => part.trim())
  const maxTtftMs = ttft === undefined ? undefined : parseDuration(ttft)
  if (maxTtftMs === undefined || !(maxTtftMs > 0)) {
    throw new Error(`--ollama-workload: expected PROMPT,GEN,TTFT like 64,16,2m, got "${value}"`)
  }
  return {
    promptTokens: positive(prompt, 64, '--ollama-workload prompt tokens'),
    genTokens: positive(gen, 16, '--ollama-workload generated tokens'),
    maxTtftMs,
  }
}

function parseSettings(argv: string[]): Settings {
  const { values } = parseArgs({
    args: argv,
    options: {
      backend: { type: 'string' },
      concurrency: { type: 'string' },
      'max-trials': { type: 'string' },
      axes: { type: 'string' },
      rounds: { type: 'string' },
      'grid-leaders': { type: 'string' },
      'bench-runs': { type: 'string' },
      fresh: { type: 'boolean' },
      'reuse-grid': { type: 'boolean' },
      'ollama-workload': { type: 'string' },
      seed: { type: 'string' },
      'wait-idle': { type: 'boolean', default: true },
      'max-wait': { type: 'string' },
      help: { type: 'boolean' },
    },
    allowNegative: true,
  })
  if (values.help) {
    console.log(USAGE)
    process.exit(0)
  }
  const backend = values.backend ?? 'both'
  if (!['llama-server', 'ollama', 'both'].includes(backend)) {
    throw new Error(`--backend: expected llama-server, ollama or both, got "${backend}"`)
  }
  return {
    backends: backend === 'both' ? ['llama-server', 'ollama'] : [backend as 'llama-server' | 'ollama'],
    concurrency: positive(values.concurrency, 4, '--concurrency'),
    maxTrials: positive(values['max-trials'], 30, '--max-trials'),
    axes: values.axes?.split(',').map((axis) => axis.trim()),
    rounds: positive(values.rounds, 4, '--rounds'),
    gridLeaders: positive(values['grid-leaders'], 3, '--grid-leaders'),
    benchRuns: positive(values['bench-runs'], 4, '--bench-runs'),
    fresh: values.fresh ?? false,
    reuseGrid: values['reuse-grid'] ?? false,
    ollamaWorkload:
      values['ollama-workload'] === undefined ? undefined : ollamaWorkload(values['ollama-workload']),
    seed: positive(values.seed, 1, '--seed'),
    waitIdle: values['wait-idle'] ?? true,
    maxWaitMs: waitLimit(values['max-wait']),
  }
}

const log = (line: string): void => {
  process.stderr.write(`${line}\n`)
}

function minutes(ms: number): string {
  const seconds = Math.round(ms / 1000)
  return seconds >= 60
    ? `${Math.floor(seconds / 60)}m${String(seconds % 60).padStart(2, '0')}s`
    : `${seconds}s`
}

/** The same idle check for every trial of every side: optimize's, the grid's, head to head, bench. */
function quietOptions(who: string, settings: Settings): QuietOptions {
  return {
    ...WAIT_IDLE_DEFAULTS,
    waitMs: settings.maxWaitMs,
    onWait: (cores) =>
      log(`[${who}] waiting for the machine to go idle (other processes use ${cores.toFixed(1)} cores)`),
    onRetry: (cores) =>
      log(`[${who}] other processes used ${cores.toFixed(1)} cores during the trial; measuring it again`),
  }
}

/** Measure through the idle check when it is on; `disturbed` counts results it could not get clean. */
async function measured<T>(
  settings: Settings,
  who: string,
  run: () => Promise<T>,
  tally: { disturbed: number },
): Promise<T> {
  if (!settings.waitIdle) return run()
  const guarded = await measureQuietly(run, quietOptions(who, settings))
  if ((guarded.otherCores ?? 0) > WAIT_IDLE_DEFAULTS.maxOtherCores) tally.disturbed++
  return guarded.value
}

// ---------------------------------------------------------------------------------------------
// Ollama: `ollama serve` in a temporary home with the small synthetic model, as the test rig runs it.

interface Ollama {
  url: string
  model: string
  stop(): Promise<void>
}

async function startOllama(gguf: string): Promise<Ollama> {
  const binary = await findRigOllama()
  if (!binary) throw new Error('no ollama: run scripts/rig.sh, or set OLLAMA_BIN')
  const server = await startOllamaServe({ binary, env: { OLLAMA_NOPRUNE: '1', OLLAMA_KEEP_ALIVE: '10m' } })
  const model = 'velo-small'
  try {
    await server.create(model, gguf, { timeoutMs: 300_000 })
  } catch (error) {
    await server.stop()
    throw error
  }
  return { url: server.url, model, stop: () => server.stop() }
}

// ---------------------------------------------------------------------------------------------

interface Scored {
  candidate: Parameters
  label: string
  measurement: Measurement
}

interface BackendReport {
  backend: 'llama-server' | 'ollama'
  workload: Workload
  axes: string[]
  gridSize: number
  result: OptimizeResult
  optimizeDistinct: number
  gridBest: Scored
  gridFailed: number
  gridSeconds: number
  optimizeSeconds: number
  headToHead: {
    optimize: number[]
    /** The grid leader that came out best when re-measured. */
    grid: number[]
    gridLabel: string
    standings: Array<{ label: string; samples: number[] }>
  }
  verdict: SearchVerdict
  /** Trials that stayed disturbed by other work after the retries (the least disturbed attempt kept). */
  disturbed: { optimize: number; grid: number; headToHead: number; bench: number }
  bench: { defaults: number[]; tuned: number[]; measured: Spread; reported: Spread }
}

function optimizeProgress(event: OptimizeEvent): void {
  if (event.type === 'trial-start') return
  const line = eventLine(event)
  if (!line) return
  if (event.type === 'trial-end' && event.best) {
    log(`[optimize]${line} · best ${event.best.value.toFixed(1)} ${event.unit} (${event.best.label})`)
  } else {
    log(`[optimize] ${line.trim()}`)
  }
}

async function runBackend(
  backend: 'llama-server' | 'ollama',
  settings: Settings,
  gguf: string,
): Promise<BackendReport> {
  const ollama = backend === 'ollama' ? await startOllama(gguf) : undefined
  try {
    const dir = join(cacheDir(), 'optimize-bench', backend)
    await mkdir(dir, { recursive: true })
    const options = {
      model: ollama ? ollama.model : gguf,
      ...(ollama ? { url: ollama.url } : {}),
      goal: 'throughput' as const,
      concurrency: settings.concurrency,
      maxTrials: settings.maxTrials,
      ...(settings.axes ? { axes: settings.axes } : {}),
      logDir: dir,
      profilesDir: join(dir, 'profiles'),
      resume: settings.fresh ? ('fresh' as const) : ('auto' as const),
      ...(ollama ? settings.ollamaWorkload : {}),
      ...(settings.waitIdle ? { quiet: quietOptions('optimize', settings) } : {}),
    }
    const plan = await planOptimize(options)
    const { space, workload, target } = plan
    const grid = enumerateGrid(space)
    const runnable = grid.filter((candidate) => plan.ruledOut(candidate) === undefined)
    const axes = space.dimensions.map((d) => `${d.name} (${d.options.length})`)
    log(`\n== ${backend}: ${target.name}, throughput at concurrency ${workload.concurrency}`)
    log(
      `space: ${axes.join(' x ')} = ${grid.length} valid configurations${settings.axes ? ' (restricted with --axes)' : ''}; ${grid.length - runnable.length} ruled out by the memory estimator`,
    )

    // 1. velo optimize, through the core function the command calls.
    const optimizeStarted = Date.now()
    const result = await optimize({ ...options, onEvent: optimizeProgress })
    const optimizeSeconds = (Date.now() - optimizeStarted) / 1000
    const optimizeTrials = result.profile.measurements.trials
    const optimizeTrialsLogged = await readTrials(result.logFile)
    const optimizeDistinct = new Set(optimizeTrialsLogged.map((t) => t.key)).size
    const optimizeDisturbed = optimizeTrialsLogged.filter(
      (t) => (t.otherCores ?? 0) > WAIT_IDLE_DEFAULTS.maxOtherCores,
    ).length
    log(
      `[optimize] done in ${minutes(optimizeSeconds * 1000)}: ${result.tuned.label} ${result.tuned.value.toFixed(1)} tok/s, ${optimizeTrials} trials (${optimizeDistinct} configurations), stopped: ${result.stoppedBecause}`,
    )

    // 2. The exhaustive grid over the same space and workload, in a seeded random order so that
    // drift in the machine's load does not line up with any axis. Resumable like optimize.
    const gridStarted = Date.now()
    const gridIdentity = { ...identity(plan, settings), kind: 'grid' }
    const { log: gridLog, resumed } = await TrialLog.open(gridIdentity, {
      dir,
      mode: settings.reuseGrid ? 'require' : settings.fresh ? 'fresh' : 'auto',
    }).catch(async (error: unknown) => {
      // --reuse-grid where there is no finished grid yet: measure one.
      if (!(error instanceof VeloError && error.code === 'VELO_NOT_FOUND')) throw error
      log(`[grid] no earlier grid with these settings to reuse; measuring it`)
      return TrialLog.open(gridIdentity, { dir, mode: 'auto' })
    })
    if (resumed > 0) {
      log(
        `[grid] ${settings.reuseGrid ? 'reusing' : 'continuing'}: ${resumed} finished trials in ${gridLog.file}`,
      )
    }
    const scored: Scored[] = []
    let failed = 0
    const gridTally = { disturbed: 0 }
    let best: Scored | undefined
    let measuredNow = 0
    const order = shuffled(runnable, settings.seed)
    for (const [index, candidate] of order.entries()) {
      const params = complete(space, candidate)
      const key = candidateKey(params)
      const label = describeCandidate(candidate)
      let record = gridLog.get(key, 0)
      if (!record) {
        const startedAt = new Date()
        let measurement: Measurement | undefined
        let error: string | undefined
        try {
          measurement = await measured(
            settings,
            'grid',
            () => target.measure(params, workload, `g${index}`),
            gridTally,
          )
        } catch (failure) {
          error = errorMessage(failure).split('\n')[0]?.slice(0, 300)
        }
        record = {
          type: 'trial',
          seq: index + 1,
          phase: 'search',
          key,
          occurrence: 0,
          params,
          ...(measurement ? { measurement } : {}),
          ...(error ? { error } : {}),
          startedAt: startedAt.toISOString(),
          seconds: (Date.now() - startedAt.getTime()) / 1000,
        }
        await gridLog.append(record)
        measuredNow++
      }
      const m = record.measurement
      if (m?.feasible) {
        const entry = { candidate, label, measurement: m }
        scored.push(entry)
        if (!best || m.score > best.measurement.score) best = entry
      } else failed++
      const elapsed = Date.now() - gridStarted
      const eta = measuredNow > 0 ? (elapsed / measuredNow) * (order.length - index - 1) : undefined
      log(
        `[grid ${index + 1}/${order.length}${eta === undefined ? '' : ` · ${minutes(eta)} left`}] ${label}: ${m ? `${m.value.toFixed(1)} tok/s${m.feasible ? '' : ' (over the TTFT bound)'}` : `failed: ${record.error}`}${best ? ` · best ${best.measurement.value.toFixed(1)} (${best.label})` : ''}`,
      )
    }
    await gridLog.finish('(grid)')
    const gridSeconds = (Date.now() - gridStarted) / 1000
    if (!best) throw new Error(`${backend}: no grid configuration could be measured`)

    // 3. Optimize's pick and the grid's three leaders again, alternating, with the same workload.
    // Each run's own figure is a max (the grid's of hundreds of noisy draws), inflated by whatever
    // luck picked it; the grid's true best is most likely among its leaders, and the best of
    // them after re-measuring is what optimize has to come within 5% of.
    const optimizePick = result.tuned.parameters
    const leaders = [...scored]
      .sort((a, b) => b.measurement.score - a.measurement.score)
      .slice(0, settings.gridLeaders)
      .map((entry) => ({ label: entry.label, params: complete(space, entry.candidate) }))
    const contenders = [
      { label: `optimize: ${result.tuned.label}`, params: optimizePick },
      ...leaders
        .filter((leader) => candidateKey(leader.params) !== candidateKey(optimizePick))
        .map((leader) => ({ label: `grid: ${leader.label}`, params: leader.params })),
    ]
    const samples = new Map<string, number[]>(contenders.map((c) => [candidateKey(c.params), []]))
    const h2hTally = { disturbed: 0 }
    const rounds = alternate(contenders, settings.rounds)
    for (const [index, contender] of rounds.entries()) {
      const m = await measured(
        settings,
        'head to head',
        () => target.measure(contender.params, workload, `h${index}`),
        h2hTally,
      )
      samples.get(candidateKey(contender.params))?.push(...m.samples)
      log(`[head to head ${index + 1}/${rounds.length}] ${contender.label}: ${m.value.toFixed(1)} tok/s`)
    }
    const standings = leaders.map((leader) => ({
      label: leader.label,
      samples: samples.get(candidateKey(leader.params)) ?? [],
    }))
    standings.sort((a, b) => summarize(b.samples).median - summarize(a.samples).median)
    const gridBestAgain = standings[0]
    if (!gridBestAgain) throw new Error(`${backend}: the grid has no leader`)
    const headToHead = {
      optimize: samples.get(candidateKey(optimizePick)) ?? [],
      grid: gridBestAgain.samples,
      gridLabel: gridBestAgain.label,
      standings,
    }
    const verdict = judgeSearch({
      optimizeHeadToHead: headToHead.optimize,
      gridHeadToHead: headToHead.grid,
      optimizeAsFound: result.tuned.value,
      gridAsFound: best.measurement.value,
      optimizeTrials,
      gridTrials: order.length,
    })

    // 4. `velo bench` (the core function the command calls), defaults and the profile in turn.
    const defaults = complete(space, {})
    const bench = { defaults: [] as number[], tuned: [] as number[] }
    const benchTally = { disturbed: 0 }
    const benchOrder = alternate(['defaults', 'tuned'] as const, settings.benchRuns)
    for (const [index, which] of benchOrder.entries()) {
      const params = which === 'defaults' ? defaults : optimizePick
      const rate = await measured(
        settings,
        'velo bench',
        () => benchOnce(params, workload, { gguf, ollama }),
        benchTally,
      )
      bench[which].push(rate)
      log(
        `[velo bench ${index + 1}/${benchOrder.length}] ${which} (${describeCandidate(params)}): ${rate.toFixed(1)} out tok/s`,
      )
    }
    return {
      backend,
      workload,
      axes: space.dimensions.map((d) => d.name),
      gridSize: grid.length,
      result,
      optimizeDistinct,
      gridBest: best,
      gridFailed: failed,
      gridSeconds,
      optimizeSeconds,
      headToHead,
      verdict,
      disturbed: {
        optimize: optimizeDisturbed,
        grid: gridTally.disturbed,
        headToHead: h2hTally.disturbed,
        bench: benchTally.disturbed,
      },
      bench: {
        ...bench,
        measured: measuredSpeedup(bench.defaults, bench.tuned),
        reported: result.profile.measurements.speedup,
      },
    }
  } finally {
    await ollama?.stop()
  }
}

/** What makes two grid runs interchangeable, for resuming an interrupted one. */
function identity(plan: OptimizePlan, settings: Settings): RunIdentity {
  return {
    modelDigest: plan.target.digest,
    hardwareFingerprint: plan.hardware.fingerprint,
    goal: plan.workload.goal,
    backend: plan.target.backend,
    workload: plan.workload,
    minCtx: plan.minCtx,
    axes: plan.space.dimensions.map((d) => d.name),
    seed: settings.seed,
  }
}

/** The trials in optimize's log. */
async function readTrials(file: string): Promise<TrialRecord[]> {
  const trials: TrialRecord[] = []
  for (const line of (await readFile(file, 'utf8')).split('\n')) {
    const parsed = trialRecordSchema.safeParse(safeJson(line))
    if (parsed.success) trials.push(parsed.data)
  }
  return trials
}

function safeJson(line: string): unknown {
  try {
    return JSON.parse(line)
  } catch {
    return undefined
  }
}

/** One `velo bench` run: generated tokens/s of all streams together at the concurrency. */
async function benchOnce(
  params: Parameters,
  workload: Workload,
  where: { gguf: string; ollama: Ollama | undefined },
): Promise<number> {
  const common: BenchCliInput = {
    model: [],
    concurrency: String(workload.concurrency),
    requests: workload.concurrency * 4,
    arrivals: 'poisson',
    promptTokens: workload.promptTokens,
    genTokens: workload.genTokens,
    warmup: 1,
    repetitions: 1,
    set: [],
    bandwidth: 'off',
    micro: false,
    microTests: 'tg128',
    llamaBench: false,
    timeout: '5m',
  }
  let input: BenchCliInput
  if (where.ollama) {
    // Ollama takes the profile's parameters per request, as velo serve sends them.
    const options = Object.entries(parametersToOllamaOptions(params)).map(([key, value]) => `${key}=${value}`)
    input = { ...common, url: where.ollama.url, model: [where.ollama.model], set: options }
  } else {
    const args = parametersToLlamaServerArgs(params)
    // Without -np llama-server runs 4 slots with a unified cache; bench would otherwise pass
    // --parallel with the concurrency, which is not the defaults optimize measured.
    if (params.parallel === undefined) args.push('--parallel', '-1')
    input = { ...common, gguf: where.gguf, serverArgs: args.join(' ') }
  }
  const { report } = await benchFromCli(input)
  const row = report.rows[0]
  if (!row || row.requests.failed > 0 || report.aborted) {
    throw new Error(
      `velo bench failed: ${report.aborted?.message ?? `${row?.requests.failed ?? '?'} requests failed`}`,
    )
  }
  return row.client.outputTokensPerSec
}

// ---------------------------------------------------------------------------------------------

function renderReport(report: BackendReport): string[] {
  const { result, verdict } = report
  const tok = (value: number): string => `${value.toFixed(1)} tok/s`
  const median = (samples: number[]): string => (samples.length > 0 ? tok(summarize(samples).median) : '-')
  return [
    `${report.backend}: throughput at concurrency ${report.workload.concurrency}, ${report.workload.promptTokens}-token prompts, ${report.workload.genTokens} generated tokens, p99 TTFT bound ${report.workload.maxTtftMs / 1000}s; searched axes ${report.axes.join(', ')}; ${report.gridSize} configurations`,
    `  defaults (optimize's baseline)        ${tok(result.baseline.value)}`,
    `  optimize's pick  ${result.tuned.label.padEnd(22)} ${tok(result.tuned.value)} as found, ${median(report.headToHead.optimize)} head to head; ${verdict.optimizeTrials} trials (${report.optimizeDistinct} configurations), ${minutes(report.optimizeSeconds * 1000)}`,
    `  grid's best      ${report.gridBest.label.padEnd(22)} ${tok(report.gridBest.measurement.value)} as found; ${verdict.gridTrials} trials (${report.gridFailed} failed or over the TTFT bound), ${minutes(report.gridSeconds * 1000)}`,
    ...report.headToHead.standings.map(
      (leader, i) =>
        `  grid leader ${i + 1}    ${leader.label.padEnd(22)} ${median(leader.samples)} head to head`,
    ),
    ...verdictLines(verdict),
    `  velo bench: defaults ${report.bench.defaults.map((v) => v.toFixed(1)).join(', ')}; profile ${report.bench.tuned.map((v) => v.toFixed(1)).join(', ')} out tok/s`,
    ...speedupLines(report.bench.reported, report.bench.measured),
    `  trials still disturbed by other work after retries: optimize ${report.disturbed.optimize}, grid ${report.disturbed.grid}, head to head ${report.disturbed.headToHead}, velo bench ${report.disturbed.bench}`,
  ]
}

async function main(): Promise<void> {
  const settings = parseSettings(process.argv.slice(2))
  process.once('SIGINT', () => process.exit(130))
  process.once('SIGTERM', () => process.exit(143))
  const gguf = await ensureSynthModel('small')
  const engine = await requireEngine()
  const version = await engineVersion(engine.serverPath)
  const started = new Date()
  const load = loadavg()[0] ?? 0
  const reports: BackendReport[] = []
  for (const backend of settings.backends) reports.push(await runBackend(backend, settings, gguf))
  const lines = [
    '',
    `velo optimize vs an exhaustive grid, ${started.toISOString().slice(0, 10)}`,
    `machine: ${cpus()[0]?.model ?? 'cpu'}, ${cpus().length} logical CPUs, ${(totalmem() / 1024 ** 3).toFixed(0)} GiB RAM, load ${load.toFixed(1)} at start; llama.cpp ${version.version ?? '?'}`,
    `settings: optimize --max-trials ${settings.maxTrials}; ${settings.rounds} head-to-head rounds of optimize's pick and the grid's ${settings.gridLeaders} leaders; ${settings.benchRuns} velo bench runs each; idle check ${settings.waitIdle ? `on (others at most ${WAIT_IDLE_DEFAULTS.maxOtherCores} cores, wait up to ${minutes(settings.maxWaitMs)})` : 'off'}${settings.reuseGrid ? '; grid reused from the last finished run' : ''}`,
    '',
  ]
  for (const report of reports) lines.push(...renderReport(report), '')
  const passed = reports.every(
    (r) => r.verdict.qualityOk && r.verdict.trialsOk && withinNoise(r.bench.reported, r.bench.measured),
  )
  lines.push(passed ? 'all criteria met' : 'some criteria not met (see FAIL above)')
  console.log(lines.join('\n'))
  process.exitCode = passed ? 0 : 1
}

main().catch((error: unknown) => {
  console.error(`optimize-vs-grid: ${errorMessage(error)}`)
  process.exit(1)
})
