import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readGguf } from '../../src/core/gguf/read.js'
import { ensureSynthModel } from '../../src/core/models/synth.js'
import { estimateMemory, type MemoryParams, modelShape } from '../../src/core/optimize/memory.js'
import { type OptimizeEvent, optimize } from '../../src/core/optimize/optimize.js'
import { reportedAllocations } from '../../src/core/optimize/reported.js'
import { type TrialRecord, trialRecordSchema } from '../../src/core/optimize/trial-log.js'
import { exportProfile, getProfile, listProfiles } from '../../src/core/profiles/index.js'
import { lacks, type RigOllama, required, rig, startRigOllama } from '../helpers/rig.js'

const MIB = 1024 ** 2
const LONG = 900_000

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'velo-optimize-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

async function trialsOf(logFile: string): Promise<TrialRecord[]> {
  const lines = (await readFile(logFile, 'utf8')).trim().split('\n')
  return lines.flatMap((line) => {
    const parsed = trialRecordSchema.safeParse(JSON.parse(line))
    return parsed.success ? [parsed.data] : []
  })
}

function llamaArgs(p: MemoryParams): string[] {
  return [
    '-c',
    String(p.ctx),
    '-np',
    String(p.parallel),
    '-fa',
    p.flashAttention ? 'on' : 'off',
    '-ctk',
    p.cacheTypeK,
    '-ctv',
    p.cacheTypeV,
    '-b',
    String(p.batch),
    '-ub',
    String(p.ubatch),
  ]
}

describe.skipIf(lacks('llama-server'))('memory estimator against llama-server', () => {
  const base: MemoryParams = {
    gpuLayers: 0,
    ctx: 2048,
    parallel: 1,
    kvUnified: false,
    cacheTypeK: 'f16',
    cacheTypeV: 'f16',
    flashAttention: true,
    batch: 2048,
    ubatch: 512,
  }
  const cases: Array<Partial<MemoryParams>> = [
    { ctx: 1024 },
    { ctx: 4096, parallel: 2, flashAttention: false },
    { ctx: 8192, parallel: 4, cacheTypeK: 'q8_0', cacheTypeV: 'q8_0' },
    { ctx: 2048, cacheTypeK: 'q4_0', cacheTypeV: 'q4_0', ubatch: 256 },
  ]
  for (const size of ['tiny', 'small'] as const) {
    it(
      `predicts what llama-server allocates for the ${size} model within 10%`,
      async () => {
        const model =
          size === 'tiny' ? required(rig().tinyModel, 'tiny model') : await ensureSynthModel('small')
        const shape = modelShape(await readGguf(model))
        for (const overrides of cases) {
          const params = { ...base, ...overrides }
          const reported = await reportedAllocations({
            serverPath: required(rig().llamaServer, 'llama-server'),
            model,
            args: llamaArgs(params),
          })
          expect(reported.complete).toBe(true)
          const estimate = estimateMemory(shape, params)
          const within = (predicted: number, actual: number, what: string) => {
            const error = Math.abs(predicted - actual) / actual
            expect(
              error,
              `${size} ${JSON.stringify(overrides)} ${what}: ${predicted / MIB} vs ${actual / MIB} MiB`,
            ).toBeLessThan(0.1)
          }
          within(estimate.weights.host, reported.weights.host, 'weights')
          within(estimate.kv.host, reported.kv.host, 'KV cache')
          within(estimate.compute.host, reported.compute.host, 'compute buffer')
          within(
            estimate.total.host,
            reported.weights.host + reported.kv.host + reported.compute.host + reported.output,
            'total',
          )
        }
      },
      LONG,
    )
  }
})

describe.skipIf(lacks('llama-server'))('velo optimize on llama-server', () => {
  let small: string
  let profilesDir: string
  let logDir: string
  let firstLog: string
  let firstTrials: TrialRecord[]
  beforeAll(async () => {
    small = await ensureSynthModel('small')
    profilesDir = join(dir, 'profiles')
    logDir = join(dir, 'logs')
  })

  it(
    'optimizes the small model for speed and writes a profile that lists, shows and exports',
    async () => {
      const events: OptimizeEvent[] = []
      const result = await optimize({
        model: small,
        goal: 'speed',
        maxTrials: 5,
        genTokens: 32,
        repetitions: 2,
        resume: 'fresh',
        profilesDir,
        logDir,
        onEvent: (event) => events.push(event),
      })
      firstLog = result.logFile
      firstTrials = await trialsOf(result.logFile)
      expect(firstTrials).toHaveLength(5)
      expect(firstTrials[0]?.phase).toBe('baseline')
      expect(firstTrials[0]?.params).toEqual({ ctx: 4096, parallel: 1 })
      expect(firstTrials.filter((t) => t.phase === 'confirm').length).toBeGreaterThan(0)
      expect(result.measured).toBe(5)
      expect(events.filter((e) => e.type === 'trial-end')).toHaveLength(5)

      const { profiles, skipped } = await listProfiles({ dir: profilesDir })
      expect(skipped).toEqual([])
      expect(profiles.map((p) => p.profile.id)).toEqual([result.profile.id])
      const { profile } = await getProfile(result.profile.id, { dir: profilesDir })
      expect(profile.model.path).toBe(small)
      expect(profile.backend).toBe('llama-server')
      expect(profile.objective.goal).toBe('speed')
      expect(profile.parameters).toMatchObject({ ctx: 4096, parallel: 1 })
      expect(profile.measurements.baseline.samples.length).toBeGreaterThanOrEqual(2)
      expect(profile.measurements.speedup.median).toBeCloseTo(
        profile.measurements.tuned.median / profile.measurements.baseline.median,
      )
      expect(profile.measurements.speedup.low).toBeLessThanOrEqual(profile.measurements.speedup.high)
      // The profile never claims a loss: the defaults win unless something measured better.
      expect(profile.measurements.speedup.median).toBeGreaterThanOrEqual(1)

      expect(exportProfile(profile, 'llama-server')).toMatch(/^--ctx-size 4096 .*--parallel 1\n$/)
      expect(exportProfile(profile, 'modelfile')).toContain(`FROM ${small}\nPARAMETER num_ctx 4096\n`)
      expect(exportProfile(profile, 'env')).toContain('LLAMA_ARG_CTX_SIZE=4096\n')
    },
    LONG,
  )

  it(
    'resumes an interrupted run from its trial log without measuring the finished trials again',
    async () => {
      // An interrupted run: two trials finished, the third cut short mid-write, no `done` line.
      const lines = (await readFile(firstLog, 'utf8')).trim().split('\n')
      const cut = [lines[0], lines[1], lines[2], (lines[3] ?? '').slice(0, 30)].join('\n')
      await writeFile(firstLog, `${cut}\n`)
      const events: OptimizeEvent[] = []
      const result = await optimize({
        model: small,
        goal: 'speed',
        maxTrials: 5,
        genTokens: 32,
        repetitions: 2,
        profilesDir,
        logDir,
        onEvent: (event) => events.push(event),
      })
      expect(result.logFile).toBe(firstLog)
      expect(result.resumed).toBe(2)
      expect(result.measured).toBe(3)
      const ends = events.filter((e) => e.type === 'trial-end')
      expect(ends.map((e) => e.fromLog)).toEqual([true, true, false, false, false])
      const trials = await trialsOf(result.logFile)
      expect(trials).toHaveLength(5)
      // The finished ones are the same records, not new measurements.
      expect(trials.slice(0, 2).map((t) => t.startedAt)).toEqual(
        firstTrials.slice(0, 2).map((t) => t.startedAt),
      )
      // Replayed results lead the search down the same path.
      expect(trials[2]?.key).toBe(firstTrials[2]?.key)
    },
    LONG,
  )

  it(
    'never starts a candidate the estimator says does not fit the memory limit',
    async () => {
      // With 4096 tokens of context, flash attention off needs ~400 MiB (its attention scores
      // grow with the context); on, ~310 MiB.
      const limit = 340 * MIB
      const result = await optimize({
        model: small,
        goal: 'speed',
        maxTrials: 5,
        genTokens: 16,
        repetitions: 1,
        maxMemoryBytes: limit,
        resume: 'fresh',
        profilesDir,
        logDir,
      })
      const trials = await trialsOf(result.logFile)
      const searched = trials.filter((t) => t.phase !== 'baseline')
      expect(searched.length).toBeGreaterThan(0)
      for (const trial of searched) {
        expect(trial.estimate?.host).toBeLessThanOrEqual(limit)
        expect(trial.params.flashAttention).not.toBe('off')
      }
      const memoryPruned = result.pruned.filter((p) => /of RAM, limit 340 MiB/.test(p.reason))
      expect(memoryPruned.length).toBeGreaterThan(0)
      expect(memoryPruned.every((p) => p.label.includes('fa=off'))).toBe(true)
    },
    LONG,
  )

  it(
    'stops starting trials when the time budget is spent, keeping the defaults it measured',
    async () => {
      const result = await optimize({
        model: required(rig().tinyModel, 'tiny model'),
        goal: 'speed',
        genTokens: 16,
        repetitions: 1,
        timeBudgetMs: 1,
        resume: 'fresh',
        profilesDir: join(dir, 'budget-profiles'),
        logDir,
      })
      expect(result.stoppedBecause).toBe('time-budget')
      expect(await trialsOf(result.logFile)).toHaveLength(1)
      expect(result.profile.parameters).toEqual({ ctx: 4096, parallel: 1 })
      expect(result.profile.measurements.speedup.median).toBe(1)
    },
    LONG,
  )

  it(
    'tunes slots and context for throughput through llama-server, with the p99 TTFT of each trial',
    async () => {
      const result = await optimize({
        model: required(rig().tinyModel, 'tiny model'),
        goal: 'throughput',
        concurrency: 2,
        minCtx: 512,
        promptTokens: 32,
        genTokens: 16,
        repetitions: 1,
        maxTrials: 4,
        resume: 'fresh',
        profilesDir,
        logDir,
      })
      const trials = await trialsOf(result.logFile)
      expect(trials).toHaveLength(4)
      for (const trial of trials) {
        expect(trial.measurement?.p99TtftMs).toBeGreaterThan(0)
        // Every slot gets the minimum context: llama-server's 4 slots by default.
        expect(trial.params.ctx).toBe(512 * (trial.params.parallel ?? 4))
      }
      expect(result.profile.objective).toMatchObject({
        goal: 'throughput',
        concurrency: 2,
        maxTtftMs: 10_000,
      })
    },
    LONG,
  )

  it(
    'searches only the axes asked for, and records how busy the rest of the machine was per trial',
    async () => {
      const waits: number[] = []
      const result = await optimize({
        model: required(rig().tinyModel, 'tiny model'),
        goal: 'speed',
        genTokens: 16,
        repetitions: 1,
        maxTrials: 4,
        axes: ['threads'],
        // No limit on the others, so nothing waits or repeats; the figure is still taken.
        quiet: {
          maxOtherCores: Number.POSITIVE_INFINITY,
          waitMs: 0,
          retries: 2,
          onWait: (c) => waits.push(c),
        },
        resume: 'fresh',
        profilesDir: join(dir, 'axes-profiles'),
        logDir,
      })
      expect(result.gridSize).toBe(2)
      const trials = await trialsOf(result.logFile)
      expect(trials.length).toBeGreaterThan(1)
      for (const trial of trials) {
        // Only the thread count moves; flash attention and the cache type stay at their defaults.
        expect(Object.keys(trial.params).sort()).toEqual(
          trial.params.threads === undefined ? ['ctx', 'parallel'] : ['ctx', 'parallel', 'threads'],
        )
        expect(trial.otherCores).toBeGreaterThanOrEqual(0)
      }
      expect(waits).toEqual([])
      await expect(
        optimize({ model: required(rig().tinyModel, 'tiny model'), goal: 'speed', axes: ['cores'], logDir }),
      ).rejects.toThrow(/axes: expected one or more of .* got cores/)
    },
    LONG,
  )
})

describe.skipIf(lacks('ollama'))('velo optimize on Ollama', () => {
  let ollama: RigOllama
  beforeAll(async () => {
    ollama = await startRigOllama()
    await ollama.create('velo-tiny', required(rig().tinyModel, 'tiny model'))
  })
  afterAll(async () => {
    await ollama?.stop()
  })

  it(
    'tunes per-request options and --apply creates a derived model carrying them',
    async () => {
      const result = await optimize({
        model: 'velo-tiny',
        url: ollama.url,
        goal: 'speed',
        maxTrials: 3,
        promptTokens: 16,
        genTokens: 8,
        repetitions: 1,
        minCtx: 1024,
        resume: 'fresh',
        apply: true,
        profilesDir: join(dir, 'ollama-profiles'),
        logDir: join(dir, 'ollama-logs'),
      })
      expect(result.profile.backend).toBe('ollama')
      expect(result.profile.model).toMatchObject({ name: 'velo-tiny:latest', digestMethod: 'ollama' })
      expect(result.profile.parameters.ctx).toBe(1024)
      expect(result.applied).toBe('velo-tiny-velo:latest')
      const response = await request(`${ollama.url}/api/show`, {
        method: 'POST',
        body: JSON.stringify({ model: result.applied }),
      })
      const show = (await response.body.json()) as { parameters?: string }
      expect(show.parameters).toMatch(/num_ctx\s+1024/)
    },
    LONG,
  )
})
