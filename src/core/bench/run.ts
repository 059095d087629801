import { randomInt } from 'node:crypto'
import { existsSync } from 'node:fs'
import { stat } from 'node:fs/promises'
import { cpus, freemem } from 'node:os'
import { basename, dirname, join } from 'node:path'
import { connectBackend } from '../backends/connect.js'
import { LlamaServerClient } from '../backends/llama-server.js'
import type { BackendClient, BackendModel } from '../backends/types.js'
import { bandwidthPlan, measureMemoryBandwidth } from '../detect/bandwidth.js'
import { type LlamaServer, startLlamaServer } from '../engine/llama-server.js'
import { requireEngine } from '../engine/resolve.js'
import { errorMessage, VeloError } from '../errors.js'
import { aggregateRow } from './aggregate.js'
import { hardwareInfo, veloVersion } from './environment.js'
import { type LevelRun, type RequestRecord, runLevel, timeRequest } from './load.js'
import { type InterleavedLlamaBench, llamaBenchArgs, runMicroBench } from './micro.js'
import { combinations, paramsLabel, serverArgs } from './parse.js'
import { median, seededRandom } from './stats.js'
import {
  BENCH_SCHEMA,
  type BenchOptions,
  type BenchReport,
  type BenchRow,
  type ModelInfo,
  type ParamValue,
  type ProgressListener,
} from './types.js'
import { buildSyntheticWorkload, loadDataset, type Workload } from './workload.js'

const DEFAULT_REQUESTS = 20

function bad(message: string): VeloError {
  return new VeloError('VELO_BAD_REQUEST', message)
}

function positiveInteger(value: number | undefined, name: string, allowZero = false): void {
  if (value === undefined) return
  if (!Number.isInteger(value) || value < (allowZero ? 0 : 1)) {
    throw bad(
      `${name}: expected ${allowZero ? 'a whole number of 0 or more' : 'a positive whole number'}, got ${value}`,
    )
  }
}

/** Check options up front so a mistake fails before any server is started. */
export function validateBenchOptions(options: BenchOptions): void {
  if (options.url === undefined && options.managed === undefined) {
    throw bad('--url: give the server to measure (or --gguf FILE for velo to start llama-server)')
  }
  if (options.url !== undefined && options.managed !== undefined) {
    throw bad('--url and --gguf: give one; with --gguf velo starts the server itself')
  }
  if (options.concurrency.length === 0) throw bad('--concurrency: expected at least one level like 1,2,4')
  for (const level of options.concurrency) positiveInteger(level, '--concurrency')
  if (options.requests !== undefined && options.durationMs !== undefined) {
    throw bad('--requests and --duration: give one of them')
  }
  positiveInteger(options.requests, '--requests')
  if (options.durationMs !== undefined && !(options.durationMs > 0))
    throw bad('--duration: expected a positive duration like 30s')
  if (options.rate !== undefined && !(options.rate > 0))
    throw bad(`--rate: expected requests per second above 0, got ${options.rate}`)
  positiveInteger(options.promptTokens, '--prompt-tokens')
  positiveInteger(options.genTokens, '--gen-tokens')
  positiveInteger(options.warmup, '--warmup', true)
  positiveInteger(options.repetitions, '--repetitions')
  positiveInteger(options.sharedPrefixTokens, '--shared-prefix')
  if (options.sharedPrefixTokens !== undefined && options.sharedPrefixTokens >= options.promptTokens) {
    throw bad(
      `--shared-prefix ${options.sharedPrefixTokens}: must be less than --prompt-tokens ${options.promptTokens}`,
    )
  }
  if (options.dataset !== undefined && options.sharedPrefixTokens !== undefined) {
    throw bad('--dataset and --shared-prefix: give one; a dataset brings its own prompts')
  }
  if (options.managed === undefined && options.sweep.some((param) => param.target === 'server')) {
    throw bad('--set: llama-server arguments can only be varied with --gguf (velo starts the server)')
  }
  for (const tokens of [...(options.micro?.promptTokens ?? []), ...(options.micro?.genTokens ?? [])]) {
    positiveInteger(tokens, '--micro')
  }
}

/** The server under test for one combination of server arguments, and how to let it go. */
interface Target {
  client: BackendClient
  server: LlamaServer | undefined
  serverArgs: string[]
}

/** Thrown inside the run to stop it; the rows measured so far stay in the report. */
class StopRun extends Error {
  constructor(readonly reason: VeloError) {
    super(reason.message)
  }
}

function matchModel(listed: BackendModel[], wanted: string): BackendModel | undefined {
  const bare = (id: string) => id.replace(/:latest$/, '')
  return listed.find((model) => model.id === wanted || bare(model.id) === bare(wanted))
}

/** The models to measure: those asked for (each must exist), else the server's only one. */
async function resolveModels(
  client: BackendClient,
  wanted: string[],
): Promise<{ id: string; info: BackendModel | undefined }[]> {
  const listed = await client.listModels()
  const names = listed.map((model) => model.id).join(', ') || 'none'
  if (wanted.length === 0) {
    const only = listed[0]
    if (listed.length === 1 && only) return [{ id: only.id, info: only }]
    throw new VeloError(
      'VELO_BAD_REQUEST',
      listed.length === 0
        ? `${client.baseUrl} lists no models`
        : `--model: ${client.baseUrl} serves ${listed.length} models; pick one or more`,
      { suggestion: `pass --model with one of: ${names}` },
    )
  }
  return wanted.map((id) => {
    const info = matchModel(listed, id)
    // llama-server serves its one model under any name.
    if (!info && client.kind !== 'llama-server') {
      throw new VeloError('VELO_MODEL_NOT_FOUND', `model "${id}" is not on ${client.baseUrl}`, {
        suggestion: `pass --model with one of: ${names}`,
      })
    }
    return { id, info: info ?? (client.kind === 'llama-server' ? listed[0] : undefined) }
  })
}

/** llama-bench beside a llama-server binary, as velo's engine build places it. */
function siblingBench(serverPath: string): string | undefined {
  const bench = join(dirname(serverPath), 'llama-bench')
  return existsSync(bench) ? bench : undefined
}

/**
 * Measure a server (or a llama-server velo starts from a GGUF): for every combination of `--set`
 * values, every model and every concurrency level, run the requests `repetitions` times and pool
 * them into a row; or, with `micro`, run pp/tg microbenchmarks. A failure after measuring began
 * ends the run with `aborted` set and the rows measured so far kept.
 */
export async function runBench(
  options: BenchOptions,
  onProgress: ProgressListener = () => {},
): Promise<BenchReport> {
  validateBenchOptions(options)
  const startedAt = new Date().toISOString()
  const requests = options.durationMs === undefined ? (options.requests ?? DEFAULT_REQUESTS) : undefined
  const serverCombos = combinations(options.sweep.filter((param) => param.target === 'server'))
  const requestCombos = combinations(options.sweep.filter((param) => param.target === 'request'))
  const maxConcurrency = Math.max(...options.concurrency)
  // A fresh seed per run unless one is given: llama-server keeps earlier prompts in a host-memory
  // cache, so a second run with the same prompts would skip their processing.
  const seed = options.seed ?? randomInt(1, 2 ** 31 - 1)
  const random = seededRandom(seed)

  let bandwidth: BenchReport['bandwidth']
  if (typeof options.bandwidth === 'number') bandwidth = { bytesPerSec: options.bandwidth, source: 'given' }
  else if (options.bandwidth === 'measure' && !options.micro) {
    // The same probe as `velo detect`: copy loops on every core, bytes read plus written.
    const { measured } = await measureMemoryBandwidth(bandwidthPlan(cpus().length, freemem()))
    if (measured) bandwidth = { bytesPerSec: measured.gbPerSecond * 1e9, source: 'measured' }
  }

  const engine = options.managed
    ? options.managed.serverPath
      ? { serverPath: options.managed.serverPath, benchPath: siblingBench(options.managed.serverPath) }
      : await requireEngine()
    : undefined
  const alias = options.managed
    ? (options.managed.alias ?? basename(options.managed.gguf).replace(/\.gguf$/i, ''))
    : undefined
  if (options.managed) {
    const exists = await stat(options.managed.gguf).catch(() => undefined)
    if (!exists?.isFile()) {
      throw new VeloError('VELO_MODEL_NOT_FOUND', `--gguf: ${options.managed.gguf} does not exist`, {
        suggestion: 'pass the path of a .gguf file',
      })
    }
  }

  const rows: BenchRow[] = []
  const micro: BenchReport['micro'] = []
  const models = new Map<string, ModelInfo>()
  const workloads = new Map<string, Workload>()
  let targetInfo: BenchReport['target'] | undefined
  let aborted: BenchReport['aborted']
  let measuring = false

  const levelsPerCombo = options.concurrency.length * options.repetitions
  const totalUnits =
    serverCombos.length *
    requestCombos.length *
    Math.max(1, options.models.length) *
    levelsPerCombo *
    (requests ?? 1)
  let doneUnits = 0
  const percent = () => Math.min(100, Math.floor((doneUnits / totalUnits) * 100))

  const openTarget = async (serverCombo: Record<string, ParamValue>): Promise<Target> => {
    if (!options.managed || !engine) {
      const client = await connectBackend(options.url ?? '', {
        api: options.api,
        connections: maxConcurrency + 2,
        timeoutMs: options.timeoutMs,
      })
      return { client, server: undefined, serverArgs: [] }
    }
    const args = [...(options.managed.args ?? []), ...serverArgs(serverCombo)]
    if (!args.includes('--parallel') && !args.includes('-np')) args.push('--parallel', String(maxConcurrency))
    const label = paramsLabel(serverCombo)
    onProgress({
      phase: 'server',
      message: `starting llama-server ${alias}${label ? ` (${label})` : ''}`,
      percent: percent(),
    })
    const server = await startLlamaServer({
      serverPath: engine.serverPath,
      model: options.managed.gguf,
      alias,
      args,
    })
    const client = new LlamaServerClient(server.url, {
      connections: maxConcurrency + 2,
      timeoutMs: options.timeoutMs,
    })
    return { client, server, serverArgs: args }
  }

  const closeTarget = async (target: Target) => {
    await target.client.close().catch(() => {})
    await target.server?.stop()
  }

  const describeModel = async (target: Target, id: string, info: BackendModel | undefined) => {
    if (models.has(id)) return
    let path: string | undefined = options.managed?.gguf
    let sizeBytes = info?.sizeBytes
    if (!path && target.client instanceof LlamaServerClient) {
      path = (await target.client.props().catch(() => undefined))?.modelPath
    }
    if (options.managed) sizeBytes = (await stat(options.managed.gguf)).size
    models.set(id, { id, sizeBytes, digest: info?.digest, parameterCount: info?.parameterCount, path })
  }

  const workloadFor = async (client: BackendClient, model: string): Promise<Workload> => {
    const cached = workloads.get(model)
    if (cached) return cached
    const workload = options.dataset
      ? await loadDataset(options.dataset, options.genTokens)
      : await buildSyntheticWorkload(client, {
          model,
          promptTokens: options.promptTokens,
          genTokens: options.genTokens,
          sharedPrefixTokens: options.sharedPrefixTokens,
          seed,
          signal: options.signal,
          onProbe: (message) => onProgress({ phase: 'calibrate', message, percent: percent() }),
        })
    workloads.set(model, workload)
    return workload
  }

  const measureLevels = async (
    target: Target,
    model: string,
    params: Record<string, ParamValue>,
    requestOptions: Record<string, ParamValue>,
  ) => {
    const workload = await workloadFor(target.client, model)
    const base = {
      client: target.client,
      model,
      options: requestOptions,
      ignoreEos: workload.kind !== 'dataset',
      temperature: options.temperature,
      seed: options.seed,
    }
    const label = paramsLabel(params)
    for (let index = 0; index < options.warmup; index += 1) {
      onProgress({
        phase: 'warmup',
        message: `${model}${label ? ` ${label}` : ''}: warm-up ${index + 1}/${options.warmup}`,
        percent: percent(),
      })
      let record = await timeRequest(base, workload.next(), performance.now(), options.signal)
      // One more try: a warm-up may meet a model still loading or a connection the server dropped.
      if (
        !record.ok &&
        record.code !== 'VELO_UPSTREAM_UNREACHABLE' &&
        record.code !== 'VELO_MODEL_NOT_FOUND'
      ) {
        record = await timeRequest(base, workload.next(), performance.now(), options.signal)
      }
      if (!record.ok) {
        throw new StopRun(
          new VeloError(
            record.code ?? 'VELO_UPSTREAM_ERROR',
            `warm-up request to ${model} failed: ${record.error}`,
          ),
        )
      }
    }
    measuring = true
    const modelBytes = models.get(model)?.sizeBytes
    for (const concurrency of options.concurrency) {
      const runs: LevelRun[] = []
      for (let repetition = 1; repetition <= options.repetitions; repetition += 1) {
        const levelStart = performance.now()
        const onRecord = (_record: RequestRecord, records: readonly RequestRecord[]) => {
          if (requests !== undefined) doneUnits += 1
          const done = records.filter((entry) => entry.ok)
          const seconds = (performance.now() - levelStart) / 1000
          const ttft = done
            .map((entry) => entry.ttftMs)
            .filter((value): value is number => value !== undefined)
          const output = done.reduce((total, entry) => total + (entry.outputTokens ?? 0), 0)
          onProgress({
            phase: 'level',
            message:
              `${model}${label ? ` ${label}` : ''} c=${concurrency} rep ${repetition}/${options.repetitions}: ` +
              `${records.length}${requests === undefined ? '' : `/${requests}`} requests`,
            percent: percent(),
            running: {
              model,
              concurrency,
              repetition,
              completed: done.length,
              failed: records.length - done.length,
              requestsPerSec: seconds > 0 ? done.length / seconds : 0,
              outputTokensPerSec: seconds > 0 ? output / seconds : 0,
              ttftMedianMs: ttft.length > 0 ? median(ttft) : undefined,
            },
          })
        }
        const run = await runLevel({
          ...base,
          concurrency,
          requests,
          durationMs: options.durationMs,
          rate: options.rate,
          arrivals: options.arrivals ?? 'poisson',
          random,
          next: () => workload.next(),
          signal: options.signal,
          onRecord,
        })
        if (requests === undefined) doneUnits += 1
        runs.push(run)
        if (run.fatal) {
          if (run.records.length > 0) {
            rows.push(
              aggregateRow(runs, {
                model,
                params,
                concurrency,
                rate: options.rate,
                slo: options.slo,
                modelBytes,
                bandwidthBytesPerSec: bandwidth?.bytesPerSec,
                partial: true,
              }),
            )
          }
          throw new StopRun(run.fatal)
        }
      }
      rows.push(
        aggregateRow(runs, {
          model,
          params,
          concurrency,
          rate: options.rate,
          slo: options.slo,
          modelBytes,
          bandwidthBytesPerSec: bandwidth?.bytesPerSec,
          partial: false,
        }),
      )
    }
  }

  const measureMicro = async (
    target: Target,
    model: string,
    params: Record<string, ParamValue>,
    requestOptions: Record<string, ParamValue>,
    withLlamaBench: boolean,
    serverCombo: Record<string, ParamValue>,
  ) => {
    if (!options.micro) return
    measuring = true
    // llama-bench on the same GGUF with the same threads (and priority, batch sizes, ...); without
    // --threads both use the engine's default, and the report shows the count llama-bench used.
    const mapped = llamaBenchArgs(target.serverArgs)
    let llamaBench: InterleavedLlamaBench | undefined
    if (withLlamaBench && options.micro.llamaBench && options.managed) {
      if (!engine?.benchPath) {
        throw new StopRun(new VeloError('VELO_ENGINE_NOT_FOUND', 'llama-bench is not beside llama-server'))
      }
      llamaBench = {
        benchPath: engine.benchPath,
        gguf: options.managed.gguf,
        model,
        threads: mapped.threads,
        args: mapped.args,
        params: serverCombo,
      }
    }
    const results = await runMicroBench({
      client: target.client,
      model,
      promptTokens: options.micro.promptTokens,
      genTokens: options.micro.genTokens,
      repetitions: options.repetitions,
      params,
      options: requestOptions,
      threads: options.managed ? mapped.threads : undefined,
      llamaBench,
      seed,
      timeoutMs: options.timeoutMs,
      signal: options.signal,
      onProgress: (message) =>
        onProgress({ phase: 'micro', message: `${model}: ${message}`, percent: percent() }),
    })
    micro.push(...results)
    doneUnits += levelsPerCombo * (requests ?? 1)
  }

  try {
    for (const serverCombo of serverCombos) {
      const target = await openTarget(serverCombo)
      try {
        const version = await target.client.version()
        targetInfo ??= {
          url: target.client.baseUrl,
          kind: target.client.kind,
          api: target.client.api,
          version,
          managed:
            options.managed && engine
              ? { gguf: options.managed.gguf, serverPath: engine.serverPath, args: target.serverArgs }
              : undefined,
        }
        const wanted = options.models.length > 0 ? options.models : alias ? [alias] : []
        const resolved = await resolveModels(target.client, wanted)
        for (const { id, info } of resolved) {
          await describeModel(target, id, info)
          for (const [index, requestCombo] of requestCombos.entries()) {
            const params = { ...serverCombo, ...requestCombo }
            // llama-bench knows no request options: it runs beside the first combination only.
            if (options.micro) await measureMicro(target, id, params, requestCombo, index === 0, serverCombo)
            else await measureLevels(target, id, params, requestCombo)
          }
        }
      } finally {
        await closeTarget(target)
      }
    }
  } catch (error) {
    let reason = error instanceof StopRun ? error.reason : error
    if (options.signal?.aborted && !(reason instanceof VeloError)) {
      reason = new VeloError('VELO_INTERNAL', 'the run was interrupted', { exitCode: 130 })
    }
    // Before anything was measured there is nothing to keep: fail as a plain error.
    if (!measuring && rows.length === 0 && micro.length === 0) throw reason
    const velo = reason instanceof VeloError ? reason : new VeloError('VELO_INTERNAL', errorMessage(reason))
    aborted = { code: velo.code, message: velo.message }
  }

  if (!targetInfo) throw new VeloError('VELO_INTERNAL', 'bench measured nothing')
  onProgress({ phase: 'done', message: aborted ? `stopped: ${aborted.message}` : 'done', percent: 100 })
  return {
    schema: BENCH_SCHEMA,
    velo: { version: await veloVersion() },
    startedAt,
    finishedAt: new Date().toISOString(),
    target: targetInfo,
    environment: { hardware: hardwareInfo(), models: [...models.values()] },
    settings: {
      concurrency: options.concurrency,
      requests,
      durationMs: options.durationMs,
      rate: options.rate,
      arrivals: options.arrivals ?? 'poisson',
      promptTokens: options.promptTokens,
      genTokens: options.genTokens,
      warmup: options.warmup,
      repetitions: options.repetitions,
      dataset: options.dataset,
      sharedPrefixTokens: options.sharedPrefixTokens,
      sweep: options.sweep,
      slo: options.slo,
      seed,
      ignoreEos: options.dataset === undefined && targetInfo.kind === 'llama-server',
    },
    bandwidth,
    rows,
    micro,
    comparison: undefined,
    aborted,
  }
}
