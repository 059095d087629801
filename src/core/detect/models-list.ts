import { request } from 'undici'
import { errorMessage } from '../errors.js'
import { discoverModels } from '../models/discover.js'
import { ollamaUrl as defaultOllamaUrl, probeOllama } from './backends.js'
import { checkModelsDirs, checkUrl, existingDirs } from './inputs.js'
import { describeModel } from './models.js'
import type { ModelEntry } from './types.js'

export interface UpstreamModel {
  name: string
  sizeBytes: number | null
  family: string | null
  parameterSize: string | null
  quantization: string | null
}

export interface UpstreamModels {
  url: string
  kind: 'ollama' | 'openai'
  reachable: boolean
  models: UpstreamModel[]
  error: string | null
}

export interface ModelsList {
  /** GGUF files found on disk. */
  local: ModelEntry[]
  /** Models the Ollama at OLLAMA_HOST (or --ollama-url) and the configured upstreams serve. */
  upstreams: UpstreamModels[]
  notes: string[]
}

export interface ListModelsOptions {
  modelsDirs?: string[]
  configuredModelsDirs?: string[]
  /** Configured upstreams (`upstreams` in velo.yaml). */
  upstreams?: Array<{ url: string; kind?: 'ollama' | 'openai' | undefined; apiKey?: string | undefined }>
  ollamaUrl?: string | undefined
  env?: NodeJS.ProcessEnv
}

/** An OpenAI-compatible server's `GET /v1/models` (the base URL may end in /v1 or not). */
async function openaiModels(url: string, apiKey: string | undefined): Promise<UpstreamModels> {
  const base = url.replace(/\/+$/, '').replace(/\/v1$/, '')
  const result: UpstreamModels = { url: base, kind: 'openai', reachable: false, models: [], error: null }
  try {
    const response = await request(`${base}/v1/models`, {
      signal: AbortSignal.timeout(2000),
      headers: apiKey ? { authorization: `Bearer ${apiKey}` } : {},
    })
    const body = (await response.body.json().catch(() => undefined)) as
      | { data?: Array<{ id?: unknown }> }
      | undefined
    if (response.statusCode !== 200 || !Array.isArray(body?.data)) {
      result.error = `${base}/v1/models answered ${response.statusCode}`
      return result
    }
    result.reachable = true
    result.models = body.data
      .map((entry) => entry.id)
      .filter((id): id is string => typeof id === 'string')
      .map((name) => ({ name, sizeBytes: null, family: null, parameterSize: null, quantization: null }))
  } catch (error) {
    result.error = errorMessage(error)
  }
  return result
}

async function ollamaModels(url: string): Promise<UpstreamModels> {
  const probe = await probeOllama(url)
  return {
    url: probe.url,
    kind: 'ollama',
    reachable: probe.reachable,
    models: probe.models.map((m) => ({
      name: m.name,
      sizeBytes: m.sizeBytes,
      family: m.family,
      parameterSize: m.parameterSize,
      quantization: m.quantization,
    })),
    error: probe.error,
  }
}

/** `velo models list`: GGUF files on disk and the models upstream servers offer. */
export async function listModels(options: ListModelsOptions = {}): Promise<ModelsList> {
  const env = options.env ?? process.env
  const notes: string[] = []
  const explicitOllama = checkUrl('--ollama-url', options.ollamaUrl)
  const modelsDirs = [
    ...(await checkModelsDirs(options.modelsDirs ?? [])),
    ...(await existingDirs(options.configuredModelsDirs ?? [], notes, 'managed.modelsDirs entry')),
  ]
  const targets = new Map<string, { kind: 'ollama' | 'openai' | undefined; apiKey: string | undefined }>()
  targets.set(explicitOllama ?? defaultOllamaUrl(env), { kind: 'ollama', apiKey: undefined })
  for (const upstream of options.upstreams ?? []) {
    const url = upstream.url.replace(/\/+$/, '')
    if (!targets.has(url)) targets.set(url, { kind: upstream.kind, apiKey: upstream.apiKey })
  }
  const [local, upstreams] = await Promise.all([
    discoverModels({
      modelsDirs,
      env,
      onProblem: (problem) =>
        notes.push(
          problem.error.startsWith(problem.path) ? problem.error : `${problem.path}: ${problem.error}`,
        ),
    }),
    Promise.all(
      [...targets].map(async ([url, { kind, apiKey }]) => {
        if (kind === 'openai') return openaiModels(url, apiKey)
        const ollama = await ollamaModels(url.replace(/\/v1$/, ''))
        // Kind not configured: an upstream that is not Ollama may still be OpenAI-compatible.
        if (kind === undefined && !ollama.reachable) {
          const openai = await openaiModels(url, apiKey)
          if (openai.reachable) return openai
        }
        return ollama
      }),
    ),
  ])
  return { local: local.map(describeModel), upstreams, notes }
}
