import { realpath } from 'node:fs/promises'
import { request } from 'undici'
import which from 'which'
import { findCachedBuild } from '../engine/install.js'
import { engineVersion } from '../engine/resolve.js'
import { errorMessage } from '../errors.js'
import type {
  BackendsInfo,
  LlamaServerBinary,
  LlamaServerInstance,
  OllamaBackend,
  OllamaLoadedModel,
  OllamaModelInfo,
  VeloInstance,
} from './types.js'

/** llama-server's default port and its neighbours (people run several), plus llama.vim's 8012. */
export const DEFAULT_LLAMA_SERVER_PORTS = [8080, 8081, 8082, 8083, 8084, 8085, 8012]
export const DEFAULT_VELO_URL = 'http://127.0.0.1:8000'
const PROBE_TIMEOUT_MS = 1500

/**
 * The Ollama URL as the Ollama CLI derives it from `OLLAMA_HOST`: scheme http unless given, host
 * 127.0.0.1, port 11434 (80/443 when a scheme is given without a port). A listen-all address
 * (0.0.0.0, ::) is reached through loopback.
 */
export function ollamaUrl(env: NodeJS.ProcessEnv = process.env): string {
  const raw = (env['OLLAMA_HOST'] ?? '').trim()
  let scheme = 'http'
  let rest = raw
  let defaultPort = '11434'
  const at = raw.indexOf('://')
  if (at >= 0) {
    scheme = raw.slice(0, at)
    rest = raw.slice(at + 3)
    defaultPort = scheme === 'https' ? '443' : '80'
  }
  rest = rest.split('/')[0] ?? ''
  let host = '127.0.0.1'
  let port = defaultPort
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(rest)
  if (bracketed) {
    host = bracketed[1] ?? host
    port = bracketed[2] ?? defaultPort
  } else if (rest.includes(':') && rest.indexOf(':') === rest.lastIndexOf(':')) {
    const [h, p] = rest.split(':')
    host = h || host
    port = p || defaultPort
  } else if (rest) {
    host = rest
  }
  if (host === '0.0.0.0') host = '127.0.0.1'
  if (host === '::') host = '::1'
  const hostPart = host.includes(':') ? `[${host}]` : host
  return `${scheme}://${hostPart}:${port}`
}

interface JsonResponse {
  status: number
  body: unknown
}

async function getJson(
  url: string,
  timeoutMs = PROBE_TIMEOUT_MS,
  headers: Record<string, string> = {},
): Promise<JsonResponse> {
  const response = await request(url, {
    signal: AbortSignal.timeout(timeoutMs),
    headers: { accept: 'application/json', ...headers },
  })
  const text = await response.body.text()
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    body = undefined
  }
  return { status: response.statusCode, body }
}

function record(value: unknown): Record<string, unknown> {
  return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {}
}

function str(value: unknown): string | null {
  return typeof value === 'string' && value !== '' ? value : null
}

function num(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null
}

function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : []
}

function reason(error: unknown): string {
  const e = error as { code?: string; cause?: { code?: string } } | undefined
  if (e?.code === 'ECONNREFUSED' || e?.cause?.code === 'ECONNREFUSED') return 'connection refused'
  if ((error as { name?: string } | undefined)?.name === 'TimeoutError') return 'no answer in time'
  return errorMessage(error)
}

/** Ollama's version, installed models (/api/tags) and loaded models (/api/ps). */
export async function probeOllama(url: string): Promise<OllamaBackend> {
  const backend: OllamaBackend = { url, reachable: false, version: null, models: [], loaded: [], error: null }
  try {
    const [version, tags, ps] = await Promise.all([
      getJson(`${url}/api/version`),
      getJson(`${url}/api/tags`).catch(() => undefined),
      getJson(`${url}/api/ps`).catch(() => undefined),
    ])
    const versionText = str(record(version.body)['version'])
    if (version.status !== 200 || versionText === null) {
      backend.error = `${url}/api/version answered ${version.status}, not like Ollama`
      return backend
    }
    backend.reachable = true
    backend.version = versionText
    backend.models = list(record(tags?.body)['models']).map((entry): OllamaModelInfo => {
      const model = record(entry)
      const details = record(model['details'])
      return {
        name: str(model['name']) ?? str(model['model']) ?? '?',
        sizeBytes: num(model['size']) ?? 0,
        digest: str(model['digest']),
        family: str(details['family']),
        parameterSize: str(details['parameter_size']),
        quantization: str(details['quantization_level']),
        modifiedAt: str(model['modified_at']),
      }
    })
    backend.loaded = list(record(ps?.body)['models']).map((entry): OllamaLoadedModel => {
      const model = record(entry)
      return {
        name: str(model['name']) ?? str(model['model']) ?? '?',
        sizeBytes: num(model['size']) ?? 0,
        vramBytes: num(model['size_vram']) ?? 0,
        contextLength: num(model['context_length']),
        expiresAt: str(model['expires_at']),
      }
    })
  } catch (error) {
    backend.error = reason(error)
  }
  return backend
}

/** A llama-server on this port, or undefined when nothing (or something else) answers there. */
export async function probeLlamaServer(
  port: number,
  host = '127.0.0.1',
): Promise<LlamaServerInstance | undefined> {
  const url = `http://${host}:${port}`
  let health: JsonResponse
  try {
    health = await getJson(`${url}/health`)
  } catch {
    return undefined
  }
  const healthBody = record(health.body)
  const loading =
    health.status === 503 && /loading/i.test(String(record(healthBody['error'])['message'] ?? ''))
  if (health.status !== 200 && !loading) return undefined
  const [props, models] = await Promise.all([
    getJson(`${url}/props`).catch(() => undefined),
    getJson(`${url}/v1/models`).catch(() => undefined),
  ])
  const propsBody = record(props?.body)
  const settings = record(propsBody['default_generation_settings'])
  const isLlamaServer =
    loading ||
    'default_generation_settings' in propsBody ||
    'total_slots' in propsBody ||
    'model_path' in propsBody
  if (!isLlamaServer) return undefined
  const firstModel = record(list(record(models?.body)['data'])[0])
  return {
    url,
    port,
    status: loading ? 'loading' : health.status === 200 ? 'ok' : 'error',
    modelPath: str(propsBody['model_path']),
    modelAlias: str(firstModel['id']) ?? str(propsBody['model_alias']),
    contextPerSlot: num(settings['n_ctx']) ?? num(propsBody['n_ctx']),
    slots: num(propsBody['total_slots']),
    buildInfo: str(propsBody['build_info']),
  }
}

/**
 * A running velo: `/health` answers and `/velo/status` is velo's snapshot (read with the admin key
 * in VELO_API_KEY when velo has keys).
 */
export async function probeVelo(url: string, apiKey?: string): Promise<VeloInstance | null> {
  try {
    const health = await getJson(`${url}/health`)
    if (health.status !== 200) return null
    const status = await getJson(
      `${url}/velo/status`,
      PROBE_TIMEOUT_MS,
      apiKey ? { authorization: `Bearer ${apiKey}` } : {},
    )
    if ((status.status === 401 || status.status === 403) && isVeloError(status.body)) {
      return { url, version: null, uptimeSeconds: null, models: [], upstreams: [], keyRequired: true }
    }
    const body = record(status.body)
    if (status.status !== 200 || !Array.isArray(body['models'])) return null
    return {
      url,
      version: str(body['version']),
      uptimeSeconds: num(body['uptimeSeconds']),
      models: list(body['models'])
        .map((model) => str(record(model)['id']))
        .filter((id): id is string => id !== null),
      upstreams: list(body['upstreams'])
        .map((upstream) => str(record(upstream)['url']))
        .filter((u): u is string => u !== null),
      keyRequired: false,
    }
  } catch {
    return null
  }
}

/** velo's own error body (`{ error: { code: 'VELO_...' } }`), not some other server's 401. */
function isVeloError(body: unknown): boolean {
  const code = record(record(body)['error'])['code']
  return typeof code === 'string' && code.startsWith('VELO_')
}

/** llama-server binaries: every one on PATH, the configured one, and velo's own build, with versions. */
export async function findLlamaServerBinaries(
  env: NodeJS.ProcessEnv,
  configured: string | undefined,
): Promise<LlamaServerBinary[]> {
  const candidates: Array<{ path: string; source: LlamaServerBinary['source'] }> = []
  if (configured) candidates.push({ path: configured, source: 'config' })
  const onPath = await which('llama-server', { all: true, nothrow: true, path: env['PATH'] ?? '' })
  for (const path of onPath ?? []) candidates.push({ path, source: 'path' })
  const built = await findCachedBuild(env).catch(() => undefined)
  if (built) candidates.push({ path: built.serverPath, source: 'velo' })
  const seen = new Set<string>()
  const unique: typeof candidates = []
  for (const candidate of candidates) {
    const real = await realpath(candidate.path).catch(() => undefined)
    if (real === undefined || seen.has(real)) continue
    seen.add(real)
    unique.push(candidate)
  }
  return Promise.all(
    unique.map(async ({ path, source }) => {
      const version = await engineVersion(path).catch(() => undefined)
      return { path, source, version: version?.version ?? null, commit: version?.commit ?? null }
    }),
  )
}

export interface BackendOptions {
  env: NodeJS.ProcessEnv
  ollamaUrl?: string | undefined
  /** Ports to look for llama-server on, besides DEFAULT_LLAMA_SERVER_PORTS and `VELO_DETECT_PORTS`. */
  extraPorts?: number[]
  veloUrl?: string | undefined
  configuredServer?: string | undefined
}

/** `VELO_DETECT_PORTS=8080,9000`: extra ports to probe for llama-server. */
export function portsFromEnv(env: NodeJS.ProcessEnv): number[] {
  return (env['VELO_DETECT_PORTS'] ?? '')
    .split(',')
    .map((part) => Number(part.trim()))
    .filter((port) => Number.isInteger(port) && port > 0 && port < 65536)
}

export async function detectBackends(options: BackendOptions): Promise<BackendsInfo> {
  const ollama = options.ollamaUrl ?? ollamaUrl(options.env)
  const veloUrl = options.veloUrl ?? DEFAULT_VELO_URL
  const ports = [
    ...new Set([...DEFAULT_LLAMA_SERVER_PORTS, ...portsFromEnv(options.env), ...(options.extraPorts ?? [])]),
  ]
  const [ollamaInfo, binaries, servers, velo] = await Promise.all([
    probeOllama(ollama.replace(/\/+$/, '')),
    findLlamaServerBinaries(options.env, options.configuredServer),
    Promise.all(ports.map((port) => probeLlamaServer(port))),
    probeVelo(veloUrl.replace(/\/+$/, ''), options.env['VELO_API_KEY']),
  ])
  return {
    ollama: ollamaInfo,
    llamaServerBinaries: binaries,
    llamaServers: servers.filter((s): s is LlamaServerInstance => s !== undefined),
    velo,
  }
}
