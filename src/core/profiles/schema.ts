import { z } from 'zod'
import { KV_TYPE_BYTES, type KvType } from '../optimize/memory.js'
import { hardwareSchema } from './hardware.js'

export const PROFILE_VERSION = 1

export const goalSchema = z.enum(['speed', 'latency', 'throughput'])
export type Goal = z.infer<typeof goalSchema>

export const backendSchema = z.enum(['llama-server', 'ollama'])
export type BackendKind = z.infer<typeof backendSchema>

const kvTypes = Object.keys(KV_TYPE_BYTES) as [KvType, ...KvType[]]
export const kvTypeSchema = z.enum(kvTypes)

const count = z.number().int().positive()

/**
 * The parameters a profile sets; an absent one is left at the backend's default. Names follow
 * llama-server; exports map them to Ollama options (num_ctx, num_gpu, num_thread, num_batch).
 */
export const parametersSchema = z.strictObject({
  /** Total context (`-c` / num_ctx); with `parallel` slots each slot gets ctx / parallel. */
  ctx: count.optional(),
  /** Layers in GPU memory (`-ngl` / num_gpu). */
  gpuLayers: z.number().int().nonnegative().optional(),
  threads: count.optional(),
  batch: count.optional(),
  ubatch: count.optional(),
  flashAttention: z.enum(['on', 'off']).optional(),
  cacheTypeK: kvTypeSchema.optional(),
  cacheTypeV: kvTypeSchema.optional(),
  /** Server slots (`-np`), the number of requests decoded together. */
  parallel: count.optional(),
})
export type Parameters = z.infer<typeof parametersSchema>

export const objectiveSchema = z.strictObject({
  goal: goalSchema,
  /** What was measured, in words, e.g. `generation tokens/s, one stream`. */
  metric: z.string(),
  unit: z.string(),
  higherIsBetter: z.boolean(),
  concurrency: count,
  promptTokens: count,
  genTokens: count,
  minCtx: count.optional(),
  /** throughput: p99 time to first token every accepted configuration stayed under. */
  maxTtftMs: z.number().positive().optional(),
})
export type Objective = z.infer<typeof objectiveSchema>

export const summarySchema = z.strictObject({
  median: z.number(),
  min: z.number(),
  max: z.number(),
  samples: z.array(z.number()),
})
export type Summary = z.infer<typeof summarySchema>

export const profileSchema = z.strictObject({
  version: z.literal(PROFILE_VERSION),
  id: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/, 'expected lowercase letters, digits, dot, dash'),
  model: z.strictObject({
    name: z.string().min(1),
    /** The GGUF file, for llama-server profiles. */
    path: z.string().optional(),
    /** gguf-sampled-sha256: sha256 of the file size, its first 16 MiB and last 1 MiB; ollama: the model's digest. */
    digest: z.string().regex(/^[0-9a-f]{12,64}$/, 'expected a hex digest'),
    digestMethod: z.enum(['gguf-sampled-sha256', 'ollama']),
    sizeBytes: z.number().int().nonnegative().optional(),
  }),
  backend: backendSchema,
  engine: z.strictObject({ version: z.string().optional(), url: z.string().optional() }),
  hardware: hardwareSchema,
  objective: objectiveSchema,
  parameters: parametersSchema,
  measurements: z.strictObject({
    baseline: summarySchema,
    tuned: summarySchema,
    /**
     * tuned over baseline (baseline over tuned for latency), so above 1 is better; low and high
     * pair the interquartile ranges of the samples pessimistically and optimistically.
     */
    speedup: z.strictObject({ median: z.number(), low: z.number(), high: z.number() }),
    trials: z.number().int().nonnegative(),
    seconds: z.number().nonnegative(),
  }),
  createdAt: z.iso.datetime(),
})
export type Profile = z.infer<typeof profileSchema>
