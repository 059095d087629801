import { existsSync } from 'node:fs'
import { freemem } from 'node:os'
import { basename, resolve } from 'node:path'
import { execa } from 'execa'
import { engineVersion, requireEngine } from '../engine/resolve.js'
import { errorMessage, VeloError } from '../errors.js'
import { readGguf } from '../gguf/read.js'
import { ggufDigest } from '../profiles/digest.js'
import { parametersToOllamaOptions } from '../profiles/export.js'
import { detectHardware, type Hardware, nvidiaGpus } from '../profiles/hardware.js'
import {
  type BackendKind,
  type Goal,
  type Parameters,
  PROFILE_VERSION,
  type Profile,
  type Summary,
} from '../profiles/schema.js'
import { profileId, writeProfile } from '../profiles/store.js'
import {
  GOAL_UNITS,
  measureWithLlamaBench,
  measureWithLlamaServer,
  measureWithOllama,
  type Workload,
} from './measure.js'
import { estimateMemory, type MemoryEstimate, type ModelShape, modelShape } from './memory.js'
import { createDerivedModel, ollamaModel, ollamaVersion } from './ollama.js'
import { measureQuietly, type QuietOptions } from './quiet.js'
import { coordinateDescent, defaultPatience, type StopReason } from './search.js'
import {
  buildSpace,
  candidateKey,
  complete,
  describeCandidate,
  enumerateGrid,
  invalidReason,
  memoryParams,
  restrictSpace,
  type SearchSpace,
} from './space.js'
import { speedup, summarize } from './stats.js'
import { type Measurement, type Phase, type ResumeMode, TrialLog, type TrialRecord } from './trial-log.js'

export interface OptimizeOptions {
  /** A GGUF path (llama-server), or an Ollama model name with `url`. */
  model: string
  /** An Ollama server: optimize the model there through per-request options. */
  url?: string
  goal: Goal
  /** Concurrent streams for throughput (default 4). */
  concurrency?: number
  /** Context every request must get (default: the model's, at most 4096). */
  minCtx?: number
  /** Measured configurations in all, baseline and repeats included (default 30). */
  maxTrials?: number
  timeBudgetMs?: number
  /** Host memory the tuned configuration may take (default: 90% of what is free now). */
  maxMemoryBytes?: number
  /** GPU memory it may take (default: 90% of what nvidia-smi reports free). */
  maxVramBytes?: number
  promptTokens?: number
  genTokens?: number
  /** Samples per trial (llama-bench repetitions, or rounds of requests). */
  repetitions?: number
  /** throughput: p99 time to first token a configuration must stay under (default 10 s). */
  maxTtftMs?: number
  resume?: ResumeMode
  /** Ollama: create `<model>-velo` with the tuned parameters. */
  apply?: boolean
  /** A llama-server from config (`engine.llamaServer`). */
  configuredServer?: string
  /**
   * Search only these axes of the space (names as in docs/optimize.md: gpuLayers, threads,
   * parallel, flashAttention, kvCache, ubatch, batch); the others stay at their defaults.
   */
  axes?: string[]
  /** Wait for other processes to go quiet before each trial and repeat trials they disturbed (Linux). */
  quiet?: QuietOptions
  seed?: number
  profilesDir?: string
  logDir?: string
  onEvent?: (event: OptimizeEvent) => void
}

export type OptimizeEvent =
  | {
      type: 'start'
      backend: BackendKind
      model: string
      logFile: string
      resumed: number
      gridSize: number
      maxTrials: number
    }
  | {
      type: 'trial-start'
      seq: number
      maxTrials: number
      phase: Phase
      label: string
      timeLeftMs: number | undefined
    }
  | {
      type: 'trial-end'
      seq: number
      maxTrials: number
      phase: Phase
      label: string
      fromLog: boolean
      measurement: Measurement | undefined
      error: string | undefined
      best: { label: string; value: number } | undefined
      unit: string
      timeLeftMs: number | undefined
    }
  | { type: 'pruned'; label: string; reason: string }

export interface CandidateReport {
  parameters: Parameters
  label: string
  trials: number
  value: number
  min: number
  max: number
  feasible: boolean
}

export interface OptimizeResult {
  profile: Profile
  profileFile: string
  logFile: string
  /** Trials this run measured, and trials it read back from an interrupted run's log. */
  measured: number
  resumed: number
  /** Candidates the estimator (or a constraint) ruled out; none of them was started. */
  pruned: Array<{ label: string; reason: string }>
  stoppedBecause: StopReason | 'max-trials' | 'time-budget'
  gridSize: number
  baseline: CandidateReport
  tuned: CandidateReport
  /** Leaders re-measured at the end, best first. */
  leaders: CandidateReport[]
  /** Ollama `--apply`: the derived model created. */
  applied: string | undefined
}

export interface OptimizeTarget {
  backend: BackendKind
  name: string
  path: string | undefined
  digest: string
  digestMethod: Profile['model']['digestMethod']
  sizeBytes: number
  shape: ModelShape
  engineVersion: string | undefined
  gpu: boolean
  measure(candidate: Parameters, workload: Workload, tag: string): Promise<Measurement>
}

const MIN_GAIN = 0.02

/** Whether this llama-server build sees a GPU (`--list-devices` names CUDA, Metal, Vulkan... devices). */
async function engineHasGpu(serverPath: string): Promise<boolean> {
  const result = await execa(serverPath, ['--list-devices'], { reject: false, all: true, timeout: 30_000 })
  return (result.all ?? '').split('\n').some((line) => /^\s+\w+\d+:/.test(line) && !/^\s+CPU/.test(line))
}

async function resolveTarget(options: OptimizeOptions, hardware: Hardware): Promise<OptimizeTarget> {
  if (options.url) {
    const url = options.url.replace(/\/+$/, '').replace(/\/v1$/, '')
    const version = await ollamaVersion(url)
    const model = await ollamaModel(url, options.model)
    return {
      backend: 'ollama',
      name: model.name,
      path: undefined,
      digest: model.digest.replace(/^sha256:/, ''),
      digestMethod: 'ollama',
      sizeBytes: model.sizeBytes,
      shape: model.shape,
      engineVersion: version,
      gpu: hardware.gpus.length > 0,
      measure: (candidate, workload, tag) => measureWithOllama(url, model.name, candidate, workload, tag),
    }
  }
  const path = resolve(options.model)
  if (!existsSync(path)) {
    throw new VeloError('VELO_MODEL_NOT_FOUND', `model ${options.model} is not a file`, {
      suggestion: 'pass a GGUF path to --model, or an Ollama model name with --url',
    })
  }
  const file = await readGguf(path)
  const shape = modelShape(file)
  const engine = await requireEngine({ configured: options.configuredServer })
  const version = await engineVersion(engine.serverPath)
  const gpu = hardware.gpus.length > 0 && (await engineHasGpu(engine.serverPath))
  const benchPath = engine.benchPath
  return {
    backend: 'llama-server',
    name: basename(path).replace(/\.gguf$/i, ''),
    path,
    digest: await ggufDigest(path),
    digestMethod: 'gguf-sampled-sha256',
    sizeBytes: file.summary.fileBytes,
    shape,
    engineVersion: version.version,
    gpu,
    measure: (candidate, workload, tag) =>
      // llama-bench isolates the engine for single-stream goals; throughput needs the server's scheduler.
      workload.goal !== 'throughput' && benchPath
        ? measureWithLlamaBench(benchPath, path, candidate, workload)
        : measureWithLlamaServer(engine.serverPath, path, candidate, workload, tag),
  }
}

function positiveInt(value: number | undefined, fallback: number, flag: string): number {
  const chosen = value ?? fallback
  if (!Number.isInteger(chosen) || chosen < 1) {
    throw new VeloError('VELO_BAD_REQUEST', `${flag} must be a positive whole number, got ${value}`)
  }
  return chosen
}

interface Budget {
  host: number
  device: number
}

async function memoryBudget(options: OptimizeOptions): Promise<Budget> {
  const gpus = await nvidiaGpus()
  const freeVram = gpus.reduce((sum, gpu) => sum + gpu.freeBytes, 0)
  return {
    host: options.maxMemoryBytes ?? Math.floor(freemem() * 0.9),
    device: options.maxVramBytes ?? Math.floor(freeVram * 0.9),
  }
}

function fitsReason(estimate: MemoryEstimate, budget: Budget): string | undefined {
  const mib = (bytes: number): string => `${(bytes / 1024 ** 2).toFixed(0)} MiB`
  if (estimate.total.host > budget.host) {
    return `needs ${mib(estimate.total.host)} of RAM, limit ${mib(budget.host)}`
  }
  if (estimate.total.device > budget.device) {
    return `needs ${mib(estimate.total.device)} of GPU memory, limit ${mib(budget.device)}`
  }
  return undefined
}

/** How many leaders are re-measured and how often, from the trial budget. */
function confirmPlan(maxTrials: number): { leaders: number; repeats: number } {
  return { leaders: Math.min(3, Math.max(1, Math.floor(maxTrials / 8))), repeats: maxTrials >= 20 ? 2 : 1 }
}

/** What a run measures, worked out before anything runs: the target, the space, the workload. */
export interface OptimizePlan {
  hardware: Hardware
  target: OptimizeTarget
  space: SearchSpace
  workload: Workload
  minCtx: number
  maxTrials: number
  /** Why a candidate is never started (the engine refuses it, or it does not fit), or undefined. */
  ruledOut(candidate: Parameters): string | undefined
}

/**
 * Resolve the model and backend and build the search space and workload, as `optimize` does
 * before its first trial. Exported so that a benchmark can run an exhaustive grid over exactly
 * the space and workload the search uses (bench/optimize-vs-grid.ts).
 */
export async function planOptimize(options: OptimizeOptions): Promise<OptimizePlan> {
  const goal = options.goal
  const maxTrials = positiveInt(options.maxTrials, 30, '--max-trials')
  if (maxTrials < 3) {
    throw new VeloError(
      'VELO_BAD_REQUEST',
      `--max-trials must be at least 3 (baseline, a candidate, a repeat), got ${maxTrials}`,
    )
  }
  const concurrency = goal === 'throughput' ? positiveInt(options.concurrency, 4, '--concurrency') : 1
  const promptTokens = positiveInt(options.promptTokens, goal === 'latency' ? 512 : 128, '--prompt-tokens')
  const genTokens = positiveInt(options.genTokens, 64, '--gen-tokens')
  const hardware = await detectHardware()
  const target = await resolveTarget(options, hardware)
  const minCtx = positiveInt(options.minCtx, Math.min(target.shape.trainContext, 4096), '--min-ctx')
  if (minCtx < promptTokens + genTokens) {
    throw new VeloError(
      'VELO_BAD_REQUEST',
      `--min-ctx ${minCtx} is smaller than a measured request (${promptTokens} prompt + ${genTokens} generated tokens)`,
      { suggestion: `raise --min-ctx to at least ${promptTokens + genTokens}` },
    )
  }
  const workload: Workload = {
    goal,
    concurrency,
    promptTokens,
    genTokens,
    repetitions: positiveInt(
      options.repetitions,
      goal === 'throughput' || target.backend === 'ollama' ? 2 : 3,
      '--repetitions',
    ),
    maxTtftMs: options.maxTtftMs ?? 10_000,
  }
  const budget = await memoryBudget(options)
  const full = buildSpace({
    backend: target.backend,
    goal,
    cores: hardware.cores,
    minCtx,
    concurrency,
    layers: target.shape.layers,
    gpu: target.gpu,
  })
  const space = options.axes === undefined ? full : restrictSpace(full, options.axes)
  const ruledOut = (candidate: Parameters): string | undefined => {
    const params = complete(space, candidate)
    return (
      invalidReason(params, target.backend) ??
      fitsReason(
        estimateMemory(target.shape, memoryParams(target.shape, params, target.backend, target.gpu)),
        budget,
      )
    )
  }
  return { hardware, target, space, workload, minCtx, maxTrials, ruledOut }
}

/**
 * Search a model's parameters on this machine for one goal and write the winner as a profile.
 * Baseline (the backend's defaults) first, then coordinate descent with restarts over the space
 * the estimator says fits, then the leaders and the baseline measured again, alternating, so
 * that the reported speedup compares like with like.
 */
export async function optimize(options: OptimizeOptions): Promise<OptimizeResult> {
  const started = Date.now()
  const emit = options.onEvent ?? (() => {})
  const goal = options.goal
  const { hardware, target, space, workload, minCtx, maxTrials, ruledOut } = await planOptimize(options)
  const { concurrency, promptTokens, genTokens } = workload
  const units = GOAL_UNITS[goal]
  const gridSize = enumerateGrid(space).length

  const { log, resumed } = await TrialLog.open(
    {
      modelDigest: target.digest,
      hardwareFingerprint: hardware.fingerprint,
      goal,
      backend: target.backend,
      concurrency,
      promptTokens,
      genTokens,
      minCtx,
      repetitions: workload.repetitions,
      maxTtftMs: goal === 'throughput' ? workload.maxTtftMs : null,
      maxMemoryBytes: options.maxMemoryBytes ?? null,
      maxVramBytes: options.maxVramBytes ?? null,
      // A restricted search walks another path; its log is its own.
      ...(options.axes === undefined ? {} : { axes: space.dimensions.map((dimension) => dimension.name) }),
    },
    { dir: options.logDir, mode: options.resume ?? 'auto' },
  )
  emit({
    type: 'start',
    backend: target.backend,
    model: target.name,
    logFile: log.file,
    resumed,
    gridSize,
    maxTrials,
  })

  const deadline = options.timeBudgetMs === undefined ? undefined : started + options.timeBudgetMs
  const occurrences = new Map<string, number>()
  const records: TrialRecord[] = []
  let measuredSeconds = 0
  let measuredCount = 0
  let replayed = 0
  let best: { label: string; value: number; score: number } | undefined
  let stopCause: 'max-trials' | 'time-budget' | undefined
  const timeLeft = (): number | undefined =>
    deadline === undefined ? undefined : Math.max(0, deadline - Date.now())
  const expectedTrialMs = (): number => (measuredCount === 0 ? 0 : (measuredSeconds / measuredCount) * 1000)

  /** One trial: read back from the log when an earlier run finished it, otherwise measured now. */
  const trial = async (candidate: Parameters, phase: Phase, limit: number): Promise<TrialRecord | 'stop'> => {
    const params = complete(space, candidate)
    const key = candidateKey(params)
    const occurrence = occurrences.get(key) ?? 0
    const label = describeCandidate(candidate)
    const seq = records.length + 1
    const previous = log.get(key, occurrence)
    if (!previous) {
      if (records.length >= limit) {
        stopCause = 'max-trials'
        return 'stop'
      }
      // Baseline always runs; later trials must fit what is left of the time budget.
      const left = timeLeft()
      if (phase !== 'baseline' && left !== undefined && left < expectedTrialMs()) {
        stopCause = 'time-budget'
        return 'stop'
      }
    }
    occurrences.set(key, occurrence + 1)
    let record: TrialRecord
    if (previous) {
      record = { ...previous, seq }
      replayed++
    } else {
      emit({ type: 'trial-start', seq, maxTrials, phase, label, timeLeftMs: timeLeft() })
      const estimate = estimateMemory(
        target.shape,
        memoryParams(target.shape, params, target.backend, target.gpu),
      )
      const startedAt = new Date()
      let measurement: Measurement | undefined
      let error: string | undefined
      let others: number | undefined
      try {
        const run = () => target.measure(params, workload, `${seq}`)
        if (options.quiet) {
          const guarded = await measureQuietly(run, options.quiet)
          measurement = guarded.value
          others = guarded.otherCores
        } else {
          measurement = await run()
        }
      } catch (failure) {
        error = errorMessage(failure).split('\n').slice(0, 3).join(' ').slice(0, 400)
      }
      const seconds = (Date.now() - startedAt.getTime()) / 1000
      measuredSeconds += seconds
      measuredCount++
      record = {
        type: 'trial',
        seq,
        phase,
        key,
        occurrence,
        params,
        ...(measurement ? { measurement } : {}),
        ...(error ? { error } : {}),
        estimate: estimate.total,
        ...(others === undefined ? {} : { otherCores: Math.round(others * 100) / 100 }),
        startedAt: startedAt.toISOString(),
        seconds,
      }
      await log.append(record)
    }
    records.push(record)
    const m = record.measurement
    if (m?.feasible && phase !== 'confirm' && (!best || m.score > best.score)) {
      best = { label, value: m.value, score: m.score }
    }
    emit({
      type: 'trial-end',
      seq,
      maxTrials,
      phase,
      label,
      fromLog: previous !== undefined,
      measurement: m,
      error: record.error,
      best: best ? { label: best.label, value: best.value } : undefined,
      unit: units.unit,
      timeLeftMs: timeLeft(),
    })
    return record
  }

  // 1. Baseline: the backend's defaults, with only the pinned context.
  const baselineRecord = await trial({}, 'baseline', maxTrials)
  if (baselineRecord === 'stop' || !baselineRecord.measurement) {
    const why = baselineRecord === 'stop' ? 'no trial budget' : baselineRecord.error
    throw new VeloError('VELO_PROCESS_FAILED', `measuring the backend's defaults failed: ${why}`, {
      suggestion: 'check the model with `velo run` or the Ollama server, then try again',
    })
  }
  const baselineKey = candidateKey({})

  // 2. Search, leaving room for the confirmation repeats.
  const plan = confirmPlan(maxTrials)
  const searchLimit = Math.max(2, maxTrials - (plan.leaders + 1) * plan.repeats)
  const pruned = new Map<string, { label: string; reason: string }>()
  const admissible = (candidate: Parameters): boolean => {
    const reason = ruledOut(candidate)
    if (reason === undefined) return true
    const key = candidateKey(candidate)
    if (!pruned.has(key)) {
      pruned.set(key, { label: describeCandidate(candidate), reason })
      emit({ type: 'pruned', label: describeCandidate(candidate), reason })
    }
    return false
  }
  const searchDeadlineSlack = (): number => (plan.leaders + 1) * plan.repeats * expectedTrialMs()
  const outcome = await coordinateDescent(
    space,
    {},
    {
      admissible,
      async measure(candidate) {
        if (candidateKey(candidate) === baselineKey) return baselineRecord.measurement?.score
        const left = timeLeft()
        if (left !== undefined && left < searchDeadlineSlack() + expectedTrialMs()) {
          stopCause = 'time-budget'
          return 'stop'
        }
        const record = await trial(candidate, 'search', searchLimit)
        if (record === 'stop') return 'stop'
        return record.measurement?.feasible ? record.measurement.score : undefined
      },
    },
    { restarts: 3, seed: options.seed ?? 1, minGain: MIN_GAIN, patience: defaultPatience(space) },
  )

  // 3. Confirm: leaders and baseline again, alternating, to separate signal from noise.
  const searchScores = [...outcome.scores.entries()]
    .filter((entry): entry is [string, number] => entry[1] !== undefined && entry[0] !== baselineKey)
    .sort((a, b) => b[1] - a[1])
  const leaders = searchScores.slice(0, plan.leaders).map(([key]) => JSON.parse(key) as Parameters)
  const spare = maxTrials - records.length
  const repeats = Math.max(plan.repeats, Math.min(3, Math.floor(spare / (leaders.length + 1))))
  confirm: for (let round = 0; round < repeats && leaders.length > 0; round++) {
    for (const candidate of [{}, ...leaders]) {
      if ((await trial(candidate, 'confirm', maxTrials)) === 'stop') break confirm
    }
  }

  // 4. Pick by the median of every sample each finalist got, across all its trials.
  const report = (candidate: Parameters): CandidateReport & { summary: Summary } => {
    const parameters = complete(space, candidate)
    const key = candidateKey(parameters)
    const mine = records.filter((r) => r.key === key && r.measurement)
    const summary = summarize(mine.flatMap((r) => r.measurement?.samples ?? []))
    return {
      parameters,
      label: describeCandidate(candidate),
      trials: mine.length,
      value: summary.median,
      min: summary.min,
      max: summary.max,
      feasible: mine.every((r) => r.measurement?.feasible !== false),
      summary,
    }
  }
  const better = (a: CandidateReport, b: CandidateReport): boolean =>
    units.higherIsBetter ? a.value > b.value : a.value < b.value
  const baseline = report({})
  const finalists = leaders.map(report).filter((r) => r.feasible && r.trials > 0)
  finalists.sort((a, b) => (better(a, b) ? -1 : better(b, a) ? 1 : 0))
  // The defaults stay when no finalist beats them (a profile never claims a loss as a gain),
  // unless the defaults broke the TTFT bound and a finalist did not.
  const top = finalists[0]
  const winner = top && (better(top, baseline) || !baseline.feasible) ? top : baseline

  const profile: Profile = {
    version: PROFILE_VERSION,
    id: profileId(target.name, target.digest, hardware),
    model: {
      name: target.name,
      ...(target.path ? { path: target.path } : {}),
      digest: target.digest,
      digestMethod: target.digestMethod,
      sizeBytes: target.sizeBytes,
    },
    backend: target.backend,
    engine: {
      ...(target.engineVersion ? { version: target.engineVersion } : {}),
      ...(options.url ? { url: options.url } : {}),
    },
    hardware,
    objective: {
      goal,
      metric: units.metric,
      unit: units.unit,
      higherIsBetter: units.higherIsBetter,
      concurrency,
      promptTokens,
      genTokens,
      minCtx,
      ...(goal === 'throughput' ? { maxTtftMs: workload.maxTtftMs } : {}),
    },
    parameters: winner.parameters,
    measurements: {
      baseline: baseline.summary,
      tuned: winner.summary,
      speedup: speedup(baseline.summary, winner.summary, units.higherIsBetter),
      trials: records.length,
      seconds: (Date.now() - started) / 1000,
    },
    createdAt: new Date().toISOString(),
  }
  const profileFile = await writeProfile(profile, options.profilesDir ? { dir: options.profilesDir } : {})
  await log.finish(profileFile)

  let applied: string | undefined
  if (options.apply) {
    if (!options.url) {
      throw new VeloError('VELO_BAD_REQUEST', '--apply creates an Ollama model and needs --url', {
        suggestion: 'for llama-server, `velo serve` applies the profile, or use `velo profiles export`',
      })
    }
    applied = await createDerivedModel(
      options.url.replace(/\/+$/, '').replace(/\/v1$/, ''),
      target.name,
      parametersToOllamaOptions(winner.parameters),
    )
  }
  const strip = ({ summary: _summary, ...rest }: CandidateReport & { summary: Summary }): CandidateReport =>
    rest
  return {
    profile,
    profileFile,
    logFile: log.file,
    measured: measuredCount,
    resumed: replayed,
    pruned: [...pruned.values()],
    stoppedBecause: stopCause ?? outcome.stoppedBecause,
    gridSize,
    baseline: strip(baseline),
    tuned: strip(winner),
    leaders: finalists.map(strip),
    applied,
  }
}
