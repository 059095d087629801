import { VeloError } from '../errors.js'
import { type HttpOptions, HttpTarget } from './http.js'
import { LlamaServerClient } from './llama-server.js'
import { OllamaClient } from './ollama.js'
import { OpenAIClient } from './openai.js'
import type { BackendApi, BackendClient, BackendKind } from './types.js'

export interface ConnectOptions extends HttpOptions {
  /** Force the wire protocol; the server's kind is still probed to use its extras. */
  api?: BackendApi | undefined
}

/** `http://host:8080/v1/` -> `http://host:8080`; a clear error for something that is not a URL. */
export function normalizeBaseUrl(url: string): string {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new VeloError('VELO_BAD_REQUEST', `--url: expected a URL like http://127.0.0.1:11434, got "${url}"`)
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new VeloError('VELO_BAD_REQUEST', `--url: expected http:// or https://, got "${url}"`)
  }
  const path = parsed.pathname.replace(/\/+$/, '').replace(/\/v1$/, '')
  return `${parsed.origin}${path}`
}

function jsonObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text)
    return value && typeof value === 'object' && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined
  } catch {
    return undefined
  }
}

/**
 * What answers at this URL. velo first (it also speaks Ollama's and OpenAI's APIs), then Ollama,
 * then llama-server (its `/props`), then anything with an OpenAI `/v1/models`.
 */
export async function detectBackendKind(url: string, options: HttpOptions = {}): Promise<BackendKind> {
  const http = new HttpTarget(normalizeBaseUrl(url), { ...options, connections: 1 })
  try {
    const velo = await http.probe('/velo/status')
    const status = velo?.status === 200 ? jsonObject(velo.body) : undefined
    if (status && 'models' in status && 'version' in status) return 'velo'
    const ollama = await http.probe('/api/version')
    if (ollama?.status === 200 && typeof jsonObject(ollama.body)?.['version'] === 'string') return 'ollama'
    const props = await http.probe('/props')
    const propsBody = props?.status === 200 ? jsonObject(props.body) : undefined
    if (propsBody && ('default_generation_settings' in propsBody || 'total_slots' in propsBody)) {
      return 'llama-server'
    }
    const models = await http.probe('/v1/models')
    if (models?.status === 200 && jsonObject(models.body)) return 'openai'
    throw new VeloError(
      'VELO_UPSTREAM_ERROR',
      `${http.baseUrl} does not look like Ollama, llama-server, velo or an OpenAI-compatible server`,
      { suggestion: 'check --url, or pass --api ollama|openai to force the protocol' },
    )
  } finally {
    await http.close()
  }
}

/** A client for the server at `url`, its kind probed (or the protocol forced with `api`). */
export async function connectBackend(url: string, options: ConnectOptions = {}): Promise<BackendClient> {
  const baseUrl = normalizeBaseUrl(url)
  let kind: BackendKind
  try {
    kind = await detectBackendKind(baseUrl, options)
  } catch (error) {
    // A forced protocol still works against a server that hides its kind.
    if (
      options.api === undefined ||
      (error instanceof VeloError && error.code === 'VELO_UPSTREAM_UNREACHABLE')
    ) {
      throw error
    }
    kind = options.api
  }
  return createBackendClient(baseUrl, kind, options)
}

/** A client for a server whose kind is already known. */
export function createBackendClient(
  baseUrl: string,
  kind: BackendKind,
  options: ConnectOptions = {},
): BackendClient {
  const api = options.api ?? (kind === 'ollama' ? 'ollama' : 'openai')
  if (api === 'ollama') return new OllamaClient(baseUrl, { ...options, kind })
  if (kind === 'llama-server') return new LlamaServerClient(baseUrl, options)
  return new OpenAIClient(baseUrl, { ...options, kind })
}
