import { z } from 'zod'
import { bytesSchema, durationSchema } from './units.js'

const urlSchema = z
  .string()
  .refine((value) => URL.canParse(value), { message: 'expected a URL like http://127.0.0.1:11434' })

export const upstreamSchema = z.strictObject({
  url: urlSchema,
  /** Probed from the server when absent. */
  kind: z.enum(['ollama', 'openai']).optional(),
  /** Restrict to these models (and serve them under these names). */
  models: z.array(z.string().min(1)).optional(),
  name: z.string().optional(),
  apiKey: z.string().optional(),
})

export const managedModelSchema = z.strictObject({
  path: z.string().min(1),
  args: z.array(z.string()).default([]),
  idleTtl: durationSchema.optional(),
  aliases: z.array(z.string()).default([]),
})

export const configSchema = z.strictObject({
  server: z
    .strictObject({
      host: z.string().default('127.0.0.1'),
      port: z.number().int().min(0).max(65535).default(8000),
      bodyLimit: bytesSchema.default(10 * 1024 ** 2),
      audioBodyLimit: bytesSchema.default(25 * 1024 ** 2),
      cors: z.array(z.string()).default([]),
    })
    .prefault({}),
  upstreams: z.array(upstreamSchema).default([]),
  engine: z
    .strictObject({
      /** A llama-server binary to use instead of the one on PATH or velo's build. */
      llamaServer: z.string().optional(),
    })
    .prefault({}),
  managed: z
    .strictObject({
      modelsDirs: z.array(z.string()).default([]),
      maxLoaded: z.number().int().min(1).default(2),
      idleTtl: durationSchema.default(10 * 60_000),
      startTimeout: durationSchema.default(120_000),
      args: z.array(z.string()).default([]),
      models: z.record(z.string(), managedModelSchema).default({}),
    })
    .prefault({}),
  speech: z.strictObject({ url: urlSchema }).optional(),
  cache: z
    .strictObject({
      exact: z
        .strictObject({
          enabled: z.boolean().default(true),
          maxBytes: bytesSchema.default(256 * 1024 ** 2),
          ttl: durationSchema.default(3_600_000),
        })
        .prefault({}),
      semantic: z
        .strictObject({
          enabled: z.boolean().default(false),
          threshold: z.number().min(0).max(1).default(0.95),
          embeddingModel: z.string().optional(),
          maxEntries: z.number().int().min(1).default(10_000),
        })
        .prefault({}),
      redis: z.string().nullable().default(null),
    })
    .prefault({}),
  auth: z
    .strictObject({
      keys: z
        .array(
          z.strictObject({
            key: z.string().min(1),
            name: z.string().optional(),
            scope: z.enum(['user', 'admin']).default('user'),
            models: z.array(z.string()).default(['*']),
            rpm: z.number().int().positive().optional(),
            tpm: z.number().int().positive().optional(),
          }),
        )
        .default([]),
    })
    .prefault({}),
})

export type VeloConfig = z.infer<typeof configSchema>
export type VeloConfigInput = z.input<typeof configSchema>
export type UpstreamConfig = z.infer<typeof upstreamSchema>
export type ManagedModelConfig = z.infer<typeof managedModelSchema>
