import type { Parameters, Profile } from './schema.js'

export const EXPORT_FORMATS = ['modelfile', 'llama-server', 'env'] as const
export type ExportFormat = (typeof EXPORT_FORMATS)[number]

/** llama-server arguments for a profile's parameters, in a stable order. */
export function parametersToLlamaServerArgs(parameters: Parameters): string[] {
  const args: string[] = []
  const add = (flag: string, value: string | number | undefined): void => {
    if (value !== undefined) args.push(flag, String(value))
  }
  add('--ctx-size', parameters.ctx)
  add('--n-gpu-layers', parameters.gpuLayers)
  add('--threads', parameters.threads)
  add('--batch-size', parameters.batch)
  add('--ubatch-size', parameters.ubatch)
  add('--flash-attn', parameters.flashAttention)
  add('--cache-type-k', parameters.cacheTypeK)
  add('--cache-type-v', parameters.cacheTypeV)
  add('--parallel', parameters.parallel)
  return args
}

export function profileToLlamaServerArgs(profile: Profile): string[] {
  return parametersToLlamaServerArgs(profile.parameters)
}

/** The Ollama request options (`options` of /api/chat and /api/generate) a profile sets. */
export interface OllamaOptions {
  num_ctx?: number
  num_gpu?: number
  num_thread?: number
  num_batch?: number
}

/** `slots`: how many slots share `ctx` (llama-server's -c is shared by all; Ollama's num_ctx is per request). */
export function parametersToOllamaOptions(
  parameters: Parameters,
  slots = parameters.parallel ?? 1,
): OllamaOptions {
  const options: OllamaOptions = {}
  if (parameters.ctx !== undefined) options.num_ctx = Math.floor(parameters.ctx / slots)
  if (parameters.gpuLayers !== undefined) options.num_gpu = parameters.gpuLayers
  if (parameters.threads !== undefined) options.num_thread = parameters.threads
  if (parameters.batch !== undefined) options.num_batch = parameters.batch
  return options
}

/** llama-server runs 4 slots when `-np` is not given. */
const LLAMA_SERVER_DEFAULT_SLOTS = 4

export function profileToOllamaOptions(profile: Profile): OllamaOptions {
  const slots =
    profile.parameters.parallel ?? (profile.backend === 'llama-server' ? LLAMA_SERVER_DEFAULT_SLOTS : 1)
  return parametersToOllamaOptions(profile.parameters, slots)
}

/**
 * Server-wide Ollama settings (environment of `ollama serve`) for what a request cannot set:
 * flash attention, KV cache type, parallel requests.
 */
export function parametersToOllamaEnv(parameters: Parameters): Record<string, string> {
  const env: Record<string, string> = {}
  if (parameters.flashAttention !== undefined) {
    env['OLLAMA_FLASH_ATTENTION'] = parameters.flashAttention === 'on' ? '1' : '0'
  }
  // Ollama has one setting for both K and V.
  if (parameters.cacheTypeK !== undefined) env['OLLAMA_KV_CACHE_TYPE'] = parameters.cacheTypeK
  if (parameters.parallel !== undefined) env['OLLAMA_NUM_PARALLEL'] = String(parameters.parallel)
  return env
}

/** llama-server reads each of its flags from an environment variable too. */
export function parametersToLlamaServerEnv(parameters: Parameters): Record<string, string> {
  const env: Record<string, string> = {}
  const set = (name: string, value: string | number | undefined): void => {
    if (value !== undefined) env[name] = String(value)
  }
  set('LLAMA_ARG_CTX_SIZE', parameters.ctx)
  set('LLAMA_ARG_N_GPU_LAYERS', parameters.gpuLayers)
  set('LLAMA_ARG_THREADS', parameters.threads)
  set('LLAMA_ARG_BATCH', parameters.batch)
  set('LLAMA_ARG_UBATCH', parameters.ubatch)
  set('LLAMA_ARG_FLASH_ATTN', parameters.flashAttention)
  set('LLAMA_ARG_CACHE_TYPE_K', parameters.cacheTypeK)
  set('LLAMA_ARG_CACHE_TYPE_V', parameters.cacheTypeV)
  set('LLAMA_ARG_N_PARALLEL', parameters.parallel)
  return env
}

function shellQuote(value: string): string {
  return /^[\w@%+=:,./-]+$/.test(value) ? value : `'${value.replaceAll("'", `'\\''`)}'`
}

function modelfile(profile: Profile): string {
  const from = profile.backend === 'ollama' ? profile.model.name : (profile.model.path ?? profile.model.name)
  const lines = [`# velo profile ${profile.id} (${profile.objective.goal})`, `FROM ${from}`]
  for (const [key, value] of Object.entries(profileToOllamaOptions(profile))) {
    lines.push(`PARAMETER ${key} ${value}`)
  }
  const env = parametersToOllamaEnv(profile.parameters)
  if (Object.keys(env).length > 0) {
    lines.push('# not Modelfile parameters; set them in the environment of `ollama serve`:')
    for (const [key, value] of Object.entries(env)) lines.push(`#   ${key}=${value}`)
  }
  if (profile.parameters.ubatch !== undefined) {
    lines.push(`# ubatch ${profile.parameters.ubatch} has no Ollama equivalent`)
  }
  return `${lines.join('\n')}\n`
}

function envFile(profile: Profile): string {
  const env =
    profile.backend === 'ollama'
      ? parametersToOllamaEnv(profile.parameters)
      : parametersToLlamaServerEnv(profile.parameters)
  const lines = Object.entries(env).map(([key, value]) => `${key}=${shellQuote(value)}`)
  if (profile.backend === 'ollama') {
    const options = profileToOllamaOptions(profile)
    if (Object.keys(options).length > 0) {
      lines.push(`# per-request options (velo serve sends them): ${JSON.stringify(options)}`)
    }
  }
  return `${lines.join('\n')}\n`
}

/** A profile in one of the export formats, as text ending in a newline. */
export function exportProfile(profile: Profile, format: ExportFormat): string {
  switch (format) {
    case 'modelfile':
      return modelfile(profile)
    case 'llama-server':
      return `${profileToLlamaServerArgs(profile).map(shellQuote).join(' ')}\n`
    case 'env':
      return envFile(profile)
  }
}
