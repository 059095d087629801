import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'
import { VeloError } from '../errors.js'
import { writeFileAtomic } from '../fs-atomic.js'
import { cacheDir } from '../paths.js'
import { parametersSchema } from '../profiles/schema.js'

export const measurementSchema = z.strictObject({
  /** Median of the samples in the goal's unit (tok/s or ms). */
  value: z.number(),
  samples: z.array(z.number()),
  /** Higher is better; the search compares these. */
  score: z.number(),
  /** throughput: false when p99 TTFT broke the bound. */
  feasible: z.boolean(),
  p99TtftMs: z.number().optional(),
})
export type Measurement = z.infer<typeof measurementSchema>

export const phaseSchema = z.enum(['baseline', 'search', 'confirm'])
export type Phase = z.infer<typeof phaseSchema>

export const trialRecordSchema = z.strictObject({
  type: z.literal('trial'),
  /** 1-based position in the run. */
  seq: z.number().int().positive(),
  phase: phaseSchema,
  /** candidateKey of `params` and how many times this run had measured it before. */
  key: z.string(),
  occurrence: z.number().int().nonnegative(),
  params: parametersSchema,
  measurement: measurementSchema.optional(),
  error: z.string().optional(),
  /** Estimated memory of the configuration, bytes. */
  estimate: z.strictObject({ host: z.number(), device: z.number() }).optional(),
  /** With the quiet check: cores other processes kept busy during the trial. */
  otherCores: z.number().nonnegative().optional(),
  startedAt: z.string(),
  seconds: z.number().nonnegative(),
})
export type TrialRecord = z.infer<typeof trialRecordSchema>

const headerSchema = z.strictObject({
  type: z.literal('run'),
  key: z.string(),
  createdAt: z.string(),
  /** What the key was made of, for people reading the log. */
  identity: z.record(z.string(), z.unknown()),
})

const doneSchema = z.strictObject({ type: z.literal('done'), at: z.string(), profile: z.string() })

/** What makes two runs the same experiment: their trials are interchangeable. */
export interface RunIdentity {
  modelDigest: string
  hardwareFingerprint: string
  goal: string
  backend: string
  [setting: string]: unknown
}

export function runKey(identity: RunIdentity): string {
  const canonical = JSON.stringify(Object.entries(identity).sort(([a], [b]) => a.localeCompare(b)))
  return createHash('sha256').update(canonical).digest('hex').slice(0, 20)
}

export function trialLogDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(cacheDir(env), 'optimize')
}

export type ResumeMode = 'auto' | 'require' | 'fresh'

export interface OpenedLog {
  log: TrialLog
  /** Trials read back from an interrupted run. */
  resumed: number
  /** Lines that could not be read (a write cut short by a kill), skipped. */
  damagedLines: number
}

/**
 * The JSONL record of one optimize run, keyed by model digest + hardware fingerprint + goal (and
 * the measurement settings). Each finished trial is written before the next starts, so a run
 * that is killed continues from its last finished trial; the file is rewritten atomically each
 * time, so it is never left half-written.
 */
export class TrialLog {
  private readonly lines: string[]
  private readonly byKey = new Map<string, TrialRecord>()
  readonly trials: TrialRecord[] = []

  private constructor(
    readonly file: string,
    lines: string[],
  ) {
    this.lines = lines
  }

  static async open(
    identity: RunIdentity,
    options: { dir?: string; mode?: ResumeMode } = {},
  ): Promise<OpenedLog> {
    const key = runKey(identity)
    const file = join(options.dir ?? trialLogDir(), `${key}.jsonl`)
    const mode = options.mode ?? 'auto'
    if (mode === 'fresh') await rm(file, { force: true })
    const header = JSON.stringify({
      type: 'run',
      key,
      createdAt: new Date().toISOString(),
      identity,
    } satisfies z.infer<typeof headerSchema>)
    const text = existsSync(file) ? await readFile(file, 'utf8') : ''
    const rawLines = text.split('\n').filter((line) => line.trim() !== '')
    const first = rawLines[0]
    const parsedHeader = first ? headerSchema.safeParse(safeJson(first)) : undefined
    const finished = rawLines.some((line) => doneSchema.safeParse(safeJson(line)).success)
    if (mode === 'require' && (!parsedHeader?.success || parsedHeader.data.key !== key)) {
      throw new VeloError(
        'VELO_NOT_FOUND',
        `no earlier optimize run with these settings to resume (${file})`,
        {
          suggestion: 'run without --resume to start one',
        },
      )
    }
    // A finished run's log is history: a new run measures again unless told to reuse it.
    if (!parsedHeader?.success || parsedHeader.data.key !== key || (finished && mode !== 'require')) {
      return { log: new TrialLog(file, [header]), resumed: 0, damagedLines: 0 }
    }
    const log = new TrialLog(file, [first ?? header])
    let damaged = 0
    for (const line of rawLines.slice(1)) {
      const trial = trialRecordSchema.safeParse(safeJson(line))
      if (trial.success) log.remember(trial.data, line)
      else if (!doneSchema.safeParse(safeJson(line)).success) damaged++
    }
    return { log, resumed: log.trials.length, damagedLines: damaged }
  }

  private remember(record: TrialRecord, line: string): void {
    this.trials.push(record)
    this.byKey.set(`${record.key}#${record.occurrence}`, record)
    this.lines.push(line)
  }

  /** The finished trial for this candidate's nth measurement, when an earlier run got that far. */
  get(key: string, occurrence: number): TrialRecord | undefined {
    return this.byKey.get(`${key}#${occurrence}`)
  }

  async append(record: TrialRecord): Promise<void> {
    this.remember(record, JSON.stringify(record))
    await this.flush()
  }

  async finish(profileFile: string): Promise<void> {
    this.lines.push(JSON.stringify({ type: 'done', at: new Date().toISOString(), profile: profileFile }))
    await this.flush()
  }

  private async flush(): Promise<void> {
    await writeFileAtomic(this.file, `${this.lines.join('\n')}\n`)
  }
}

function safeJson(line: string): unknown {
  try {
    return JSON.parse(line)
  } catch {
    return undefined
  }
}
