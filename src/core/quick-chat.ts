import { existsSync } from 'node:fs'
import { basename } from 'node:path'
import { request } from 'undici'
import { installEngine } from './engine/install.js'
import { startLlamaServer } from './engine/llama-server.js'
import { resolveEngine } from './engine/resolve.js'
import { VeloError } from './errors.js'
import { ensureSynthModel } from './models/synth.js'

export interface QuickChatOptions {
  /** A GGUF file; velo's tiny synthetic model when absent. */
  model?: string | undefined
  prompt: string
  maxTokens: number
  configuredServer?: string | undefined
  onStatus?: (message: string, percent?: number) => void
}

export interface QuickChatResult {
  model: string
  engine: string
  reply: string
  promptTokens: number
  completionTokens: number
  /** From llama-server's own timings. */
  promptTokensPerSecond: number
  generationTokensPerSecond: number
  /** Client-observed. */
  loadSeconds: number
  requestMs: number
}

interface ChatResponse {
  choices: { message: { content: string | null } }[]
  usage: { prompt_tokens: number; completion_tokens: number }
  timings?: { prompt_per_second: number; predicted_per_second: number }
}

/** One chat on the embedded default: velo's engine (built if needed) and a model (synthesized if none). */
export async function quickChat(options: QuickChatOptions): Promise<QuickChatResult> {
  const status = options.onStatus ?? (() => {})
  let engine = await resolveEngine({ configured: options.configuredServer })
  if (!engine) {
    const built = await installEngine({ onProgress: ({ message, percent }) => status(message, percent) })
    engine = { serverPath: built.serverPath, benchPath: built.benchPath, source: 'velo' }
  }
  let model = options.model
  if (model && !existsSync(model)) {
    throw new VeloError('VELO_MODEL_NOT_FOUND', `model file ${model} does not exist`, {
      suggestion: 'pass a .gguf path, or no model to use velo’s synthetic one',
    })
  }
  if (!model) {
    status('synthesizing velo-tiny (no model given)')
    model = await ensureSynthModel('tiny')
  }
  const alias = basename(model).replace(/\.gguf$/i, '')
  status(`starting llama-server with ${alias}`)
  const loadStarted = performance.now()
  const server = await startLlamaServer({ serverPath: engine.serverPath, model, alias })
  const loadSeconds = (performance.now() - loadStarted) / 1000
  try {
    status(`asking ${alias}`)
    const started = performance.now()
    const response = await request(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: alias,
        messages: [{ role: 'user', content: options.prompt }],
        max_tokens: options.maxTokens,
      }),
    })
    const body = (await response.body.json()) as ChatResponse
    const requestMs = performance.now() - started
    if (response.statusCode !== 200) {
      throw new VeloError(
        'VELO_UPSTREAM_ERROR',
        `llama-server answered ${response.statusCode}: ${JSON.stringify(body)}`,
      )
    }
    return {
      model,
      engine: engine.serverPath,
      reply: body.choices[0]?.message.content ?? '',
      promptTokens: body.usage.prompt_tokens,
      completionTokens: body.usage.completion_tokens,
      promptTokensPerSecond: body.timings?.prompt_per_second ?? 0,
      generationTokensPerSecond: body.timings?.predicted_per_second ?? 0,
      loadSeconds,
      requestMs,
    }
  } finally {
    await server.stop()
  }
}
