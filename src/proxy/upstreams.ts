import { buildConnector, Pool } from 'undici'
import type { UpstreamConfig } from '../core/config/schema.js'
import { errorMessage } from '../core/errors.js'
import { CircuitBreaker } from './resilience/breaker.js'

export type UpstreamKind = 'ollama' | 'openai'

/** One model an upstream serves, as it lists it. */
export interface UpstreamModel {
  /** The name the upstream knows it by. */
  name: string
  /** Ollama's `/api/tags` entry, kept as is for velo's own `/api/tags`. */
  tag: Record<string, unknown> | undefined
  created: number | undefined
  ownedBy: string | undefined
}

/** An entry of `/api/tags`, as Ollama lists it. */
interface OllamaTagsBody {
  models?: Record<string, unknown>[]
}

interface OpenAIModelsBody {
  data?: { id?: unknown; created?: unknown; owned_by?: unknown }[]
}

const PROBE_TIMEOUT_MS = 2500
/** resilience.timeouts.connect's default, until a request brings the configured one. */
const CONNECT_TIMEOUT_MS = 5000

/** A server velo forwards to: Ollama or anything OpenAI-compatible, one keep-alive pool each. */
export class Upstream {
  readonly name: string
  readonly url: string
  readonly origin: string
  readonly pool: Pool
  readonly apiKey: string | undefined
  /** Configured model names: serve exactly these (no listing needed). */
  readonly only: string[] | undefined
  /** Configured requests at once per model (`parallel`, Ollama's OLLAMA_NUM_PARALLEL); wins over probes. */
  readonly parallel: number | undefined
  kind: UpstreamKind | undefined
  healthy = false
  lastError: string | undefined
  lastErrorAt: string | undefined
  models: UpstreamModel[] = []
  version: string | undefined
  /** Parallel slots the server reports (llama-server); undefined when it does not say. */
  slots: number | undefined
  /** Connections velo keeps to it at most (its pool's size). */
  readonly connections: number
  /** Headers every request to this upstream carries (its API key), built once. */
  readonly headers: Record<string, string>
  /** Skips this upstream after consecutive failures (resilience.breaker). */
  readonly breaker = new CircuitBreaker()
  /** Requests sent here that have not finished: the load balancer picks the upstream with fewest. */
  outstanding = 0
  /** Path prefix before `/api` or `/v1` (usually empty). */
  private readonly prefix: string
  private connectTimeoutMs: number
  private connector: buildConnector.connector

  constructor(config: UpstreamConfig, options: { connections?: number; connectTimeoutMs?: number } = {}) {
    const parsed = new URL(config.url)
    this.url = config.url.replace(/\/+$/, '')
    this.origin = parsed.origin
    this.prefix = parsed.pathname.replace(/\/+$/, '').replace(/\/v1$/, '')
    this.name = config.name ?? this.url
    this.kind = config.kind
    this.apiKey = config.apiKey
    this.only = config.models
    this.parallel = config.parallel
    this.headers = this.apiKey ? { authorization: `Bearer ${this.apiKey}` } : {}
    this.connectTimeoutMs = options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS
    this.connector = buildConnector({ timeout: this.connectTimeoutMs })
    this.connections = options.connections ?? 256
    this.pool = new Pool(this.origin, {
      connections: this.connections,
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 600_000,
      // Through a field, so that a reloaded resilience.timeouts.connect applies to new connections.
      connect: (connectOptions, callback) => this.connector(connectOptions, callback),
    })
  }

  /** For messages: `openai gpu-box`, `ollama http://127.0.0.1:11434`. */
  get label(): string {
    return `${this.kind ?? 'upstream'} ${this.name}`
  }

  /** How long opening a connection may take (resilience.timeouts.connect); cheap when unchanged. */
  setConnectTimeout(ms: number): void {
    if (ms === this.connectTimeoutMs) return
    this.connectTimeoutMs = ms
    this.connector = buildConnector({ timeout: ms })
  }

  /** The request path of an API route on this upstream: `/api/chat`, `/v1/chat/completions`. */
  path(route: string): string {
    return `${this.prefix}${route}`
  }

  /** Headers every request to this upstream carries (a copy: callers add their own). */
  authHeaders(): Record<string, string> {
    return { ...this.headers }
  }

  async getJson(route: string, timeoutMs = PROBE_TIMEOUT_MS): Promise<{ status: number; body: unknown }> {
    const response = await this.pool.request({
      path: this.path(route),
      method: 'GET',
      headers: this.authHeaders(),
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
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

  /** Ollama answers `/api/version`; anything else that answers `/v1/models` is OpenAI-compatible. */
  async probeKind(): Promise<UpstreamKind | undefined> {
    try {
      const version = await this.getJson('/api/version')
      const body = version.body as { version?: unknown } | undefined
      if (version.status === 200 && typeof body?.version === 'string') {
        this.version = body.version
        return 'ollama'
      }
    } catch {
      // Not Ollama, or down: the next probe tells.
    }
    const models = await this.getJson('/v1/models')
    if (models.status === 200) return 'openai'
    throw new Error(`answered ${models.status} to GET ${this.path('/v1/models')}`)
  }

  /** Probe the kind when unknown and list the models; marks the upstream healthy or not. */
  async refresh(): Promise<void> {
    try {
      this.kind ??= await this.probeKind()
      if (this.kind === 'ollama' && !this.version) {
        const { body } = await this.getJson('/api/version')
        const version = (body as { version?: unknown } | undefined)?.version
        if (typeof version === 'string') this.version = version
      }
      this.models = await this.listModels()
      if (this.kind === 'openai') this.slots ??= await this.probeSlots()
      this.healthy = true
    } catch (error) {
      this.markDown(error)
      // Configured names stay servable while the upstream is down: clients get a 502 naming it, not a 404.
      if (this.only && this.kind) this.models = this.filter([])
    }
  }

  /**
   * llama-server says how many requests it runs at once (`/props` total_slots); admitting more only
   * piles them up inside the engine, admitting fewer leaves slots idle. Other servers do not say.
   */
  private async probeSlots(): Promise<number | undefined> {
    try {
      const { status, body } = await this.getJson('/props')
      const slots = (body as { total_slots?: unknown } | undefined)?.total_slots
      return status === 200 && typeof slots === 'number' && slots > 0 ? slots : undefined
    } catch {
      return undefined
    }
  }

  /** A request got an answer: the upstream is up, whatever the last probe said. */
  markUp(): void {
    this.healthy = true
  }

  markDown(error: unknown): void {
    this.healthy = false
    this.lastError = describeNetworkError(error)
    this.lastErrorAt = new Date().toISOString()
  }

  private async listModels(): Promise<UpstreamModel[]> {
    if (this.kind === 'ollama') {
      const { status, body } = await this.getJson('/api/tags')
      if (status !== 200) throw new Error(`answered ${status} to GET ${this.path('/api/tags')}`)
      const models = ((body as OllamaTagsBody | undefined)?.models ?? []).flatMap((tag) => {
        const name = typeof tag['name'] === 'string' ? tag['name'] : undefined
        return name ? [{ name, tag, created: undefined, ownedBy: 'ollama' }] : []
      })
      return this.filter(models)
    }
    const { status, body } = await this.getJson('/v1/models')
    if (status !== 200) throw new Error(`answered ${status} to GET ${this.path('/v1/models')}`)
    const models = ((body as OpenAIModelsBody | undefined)?.data ?? []).flatMap((entry) =>
      typeof entry.id === 'string'
        ? [
            {
              name: entry.id,
              tag: undefined,
              created: typeof entry.created === 'number' ? entry.created : undefined,
              ownedBy: typeof entry.owned_by === 'string' ? entry.owned_by : undefined,
            },
          ]
        : [],
    )
    return this.filter(models)
  }

  /** With a configured `models` list, serve exactly those names (listed or not). */
  private filter(listed: UpstreamModel[]): UpstreamModel[] {
    if (!this.only) return listed
    return this.only.map(
      (name) =>
        listed.find((model) => model.name === name || model.name === `${name}:latest`) ?? {
          name,
          tag: undefined,
          created: undefined,
          ownedBy: undefined,
        },
    )
  }

  /** Drop every connection now (shutdown, after the drain). */
  close(): Promise<void> {
    return this.pool.destroy()
  }

  /** Take no new requests; resolves once the ones in flight have ended (a reload removed it). */
  retire(): Promise<void> {
    return this.pool.close()
  }
}

/** How many requests of one model velo admits at once across its upstreams, and whether to pin slots. */
export interface ModelCapacity {
  slots: number
  /**
   * Leases carry an `id_slot` (prefix affinity): only for a model on a single llama-server whose
   * slots cover the capacity (a configured `parallel` above the real slots would name slots that do
   * not exist). With several upstreams a slot number would not say which server it belongs to.
   */
  pinSlots: boolean
}

/**
 * A model's parallel capacity: the sum over its upstreams of each one's configured `parallel`, else
 * the slots llama-server reports, else `profileParallel` (a profile for the model, for Ollama). An
 * OpenAI-compatible server that reports no slots (vLLM, LM Studio, a hosted API) batches requests
 * itself: queueing them in velo would only add latency, so it takes as many as velo has connections
 * to it. Upstreams that say nothing add nothing; undefined when none says (scheduler.defaultCapacity
 * applies: Ollama, whose parallelism is not visible from outside).
 */
export function modelCapacity(
  upstreams: readonly Upstream[],
  profileParallel?: number,
): ModelCapacity | undefined {
  let slots = 0
  let known = false
  for (const upstream of upstreams) {
    const own =
      upstream.parallel ??
      upstream.slots ??
      (upstream.kind === 'ollama'
        ? profileParallel
        : upstream.kind === 'openai'
          ? upstream.connections
          : undefined)
    if (own === undefined) continue
    slots += own
    known = true
  }
  if (!known) return undefined
  const [only] = upstreams
  const pinSlots = upstreams.length === 1 && only?.slots !== undefined && slots <= only.slots
  return { slots, pinSlots }
}

/** `connect ECONNREFUSED 127.0.0.1:11434` rather than undici's class names. */
export function describeNetworkError(error: unknown): string {
  const code = (error as { code?: unknown } | undefined)?.code
  const message = errorMessage(error)
  if (typeof code === 'string' && !message.includes(code)) return `${code}: ${message}`
  return message
}

/** `OLLAMA_HOST` as Ollama reads it (`0.0.0.0:11434`, `host`, `http://host:port`), as a client URL. */
export function ollamaHostUrl(env: NodeJS.ProcessEnv = process.env): string {
  const raw = (env['OLLAMA_HOST'] ?? '').trim()
  if (!raw) return 'http://127.0.0.1:11434'
  const withScheme = /^https?:\/\//.test(raw) ? raw : `http://${raw}`
  try {
    const url = new URL(withScheme)
    if (url.hostname === '0.0.0.0' || url.hostname === '[::]') url.hostname = '127.0.0.1'
    const hasPort = /^[^/]*:\d+(\/|$)/.test(withScheme.replace(/^https?:\/\//, ''))
    if (!hasPort) url.port = '11434'
    return url.origin
  } catch {
    return 'http://127.0.0.1:11434'
  }
}
