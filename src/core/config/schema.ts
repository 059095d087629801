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
  /**
   * Requests the server runs at once for each of its models (Ollama's OLLAMA_NUM_PARALLEL,
   * llama-server's --parallel): velo admits this many per model and queues the rest. When absent,
   * llama-server's /props total_slots, else a profile's parallel, else scheduler.defaultCapacity
   * (Ollama) or velo's connections to it (other OpenAI-compatible servers).
   */
  parallel: z.number().int().min(1).optional(),
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
      /** Body limits for single routes (`/v1/embeddings: 2MiB`), over bodyLimit. */
      routeBodyLimits: z.record(z.string().startsWith('/'), bytesSchema).default({}),
      cors: z.array(z.string()).default([]),
      /** How long velo waits for an upstream's answer (headers, and between body chunks). */
      upstreamTimeout: durationSchema.default(600_000),
      /** On SIGINT/SIGTERM: how long in-flight requests may take to finish before they are cut. */
      shutdownTimeout: durationSchema.default(10_000),
      logFormat: z.enum(['json', 'pretty']).default('pretty'),
    })
    .prefault({}),
  upstreams: z.array(upstreamSchema).default([]),
  /** How velo copes with upstreams that fail or hang: timeouts, retries, circuit breakers. */
  resilience: z
    .strictObject({
      timeouts: z
        .strictObject({
          /** Opening a TCP connection to an upstream. */
          connect: durationSchema.default(5_000),
          /** From sending a request to the answer's headers (llama-server, Ollama: the first token). */
          firstToken: durationSchema.default(120_000),
          /** Between the headers and the first chunk of an answer, and between two chunks. */
          idle: durationSchema.default(60_000),
        })
        .prefault({}),
      retries: z
        .strictObject({
          /** Retries of a request that failed before any byte reached the client. */
          max: z.number().int().min(0).max(10).default(2),
          /** The first backoff step; it doubles per retry (with jitter) up to maxBackoff. */
          backoff: durationSchema.default(250),
          maxBackoff: durationSchema.default(4_000),
        })
        .prefault({}),
      breaker: z
        .strictObject({
          /** Consecutive failures of an upstream that open its circuit breaker. */
          failures: z.number().int().min(1).default(5),
          /** How long an open breaker skips the upstream before one request probes it. */
          cooldown: durationSchema.default(30_000),
        })
        .prefault({}),
    })
    .prefault({}),
  /** Other names for models: `gpt-4o-mini: qwen2.5:7b` (listed in /v1/models and /api/tags too). */
  aliases: z.record(z.string(), z.string().min(1)).default({}),
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
      /** Wait before the next start after the second failure in a row; doubles with each further one. */
      restartBackoff: durationSchema.default(500),
      /** The longest wait between restarts of a model that keeps failing. */
      restartBackoffMax: durationSchema.default(30_000),
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
          /** Routes cached even when sampling is random (default: only temperature 0 or a fixed seed). */
          nondeterministicRoutes: z.array(z.string().startsWith('/')).default([]),
        })
        .prefault({}),
      semantic: z
        .strictObject({
          enabled: z.boolean().default(false),
          threshold: z.number().min(0).max(1).default(0.95),
          embeddingModel: z.string().optional(),
          maxEntries: z.number().int().min(1).default(10_000),
          /** Models whose requests may be answered semantically; `*` for all. */
          models: z.array(z.string().min(1)).default(['*']),
        })
        .prefault({}),
      redis: z.string().nullable().default(null),
      /** Prefix of velo's keys in Redis. */
      redisPrefix: z.string().min(1).default('velo:cache:v1:'),
    })
    .prefault({}),
  scheduler: z
    .strictObject({
      /** Parallel requests per model on an Ollama whose parallelism velo does not know. */
      defaultCapacity: z.number().int().min(1).default(4),
      /** Requests waiting per model before 429. */
      maxQueue: z.number().int().min(0).default(64),
      /** Requests waiting over all models before 503. */
      maxQueueTotal: z.number().int().min(0).default(512),
      queueTimeout: durationSchema.default(30_000),
      defaultPriority: z.number().int().min(-100).max(100).default(0),
      /** Default priority by API key name (or client address). */
      priorities: z.record(z.string(), z.number().int().min(-100).max(100)).default({}),
      /** Fair-share weight by API key name (or client address). */
      weights: z.record(z.string(), z.number().positive()).default({}),
      affinity: z
        .strictObject({
          /**
           * Serve the loaded models' queued requests before switching (true), or admit every request
           * in arrival order and let the process manager swap models as they come (false).
           */
          enabled: z.boolean().default(true),
          /** How long a model may wait while other models of its machine hold every place. */
          maxWait: durationSchema.default(10_000),
        })
        .prefault({}),
      prefixAffinity: z.boolean().default(true),
      auto: z
        .strictObject({
          alias: z.string().min(1).default('auto'),
          rules: z
            .array(
              z.strictObject({
                model: z.string().min(1),
                minPromptChars: z.number().int().min(0).optional(),
                maxPromptChars: z.number().int().min(0).optional(),
                tools: z.boolean().optional(),
              }),
            )
            .default([]),
          default: z.string().min(1).optional(),
        })
        .prefault({}),
    })
    .prefault({}),
  toolCalls: z
    .strictObject({
      repair: z.boolean().default(true),
      recoverFromText: z.boolean().default(true),
      validate: z.boolean().default(true),
      retries: z.number().int().min(0).max(5).default(1),
      onInvalid: z.enum(['error', 'pass']).default('error'),
      enforce: z
        .strictObject({
          models: z.array(z.string().min(1)).default([]),
          maxStringLength: z.number().int().min(0).default(0),
          maxArrayItems: z.number().int().min(0).default(0),
          allowText: z.boolean().default(true),
        })
        .prefault({}),
    })
    .prefault({}),
  auth: z
    .strictObject({
      keys: z
        .array(
          z.strictObject({
            /** The key itself, or `sha256:` and the hex SHA-256 of it (`velo keys create` prints both). */
            key: z
              .string()
              .min(1)
              .refine((value) => !value.startsWith('sha256:') || /^sha256:[0-9a-f]{64}$/i.test(value), {
                message: 'expected sha256: followed by 64 hex digits (the SHA-256 of the key)',
              }),
            name: z.string().min(1).optional(),
            scope: z.enum(['user', 'admin']).default('user'),
            /** Models this key may use: names or patterns with `*` (`qwen*`). */
            models: z.array(z.string().min(1)).default(['*']),
            /** Requests per minute (token bucket). */
            rpm: z.number().int().positive().optional(),
            /** Prompt plus completion tokens per minute (token bucket, charged when a request ends). */
            tpm: z.number().int().positive().optional(),
          }),
        )
        .default([])
        .superRefine((keys, issue) => {
          const seen = new Set<string>()
          const names = new Set<string>()
          keys.forEach((entry, index) => {
            if (seen.has(entry.key)) {
              issue.addIssue({
                code: 'custom',
                path: [index, 'key'],
                message: 'the same key is listed twice',
              })
            }
            seen.add(entry.key)
            if (entry.name !== undefined) {
              if (names.has(entry.name)) {
                issue.addIssue({
                  code: 'custom',
                  path: [index, 'name'],
                  message: `name "${entry.name}" is used twice`,
                })
              }
              names.add(entry.name)
            }
          })
        }),
      /** Paths that need no key even when keys exist (probes); add `/metrics` for a keyless scraper. */
      open: z.array(z.string().startsWith('/')).default(['/', '/health', '/ready']),
      /** Redis that holds the rate-limit buckets, shared by every velo on it (default: cache.redis). */
      redis: z.string().nullable().optional(),
      redisPrefix: z.string().min(1).default('velo:auth:v1:'),
    })
    .prefault({}),
})

export type VeloConfig = z.infer<typeof configSchema>
export type VeloConfigInput = z.input<typeof configSchema>
export type UpstreamConfig = z.infer<typeof upstreamSchema>
export type ManagedModelConfig = z.infer<typeof managedModelSchema>

/** The JSON Schema of velo.yaml (what users write: sizes and durations as text or numbers), for editors. */
export function configJsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(configSchema, { io: 'input', target: 'draft-2020-12' }),
    title: 'velo.yaml',
  }
}
