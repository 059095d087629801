/**
 * The model listings and descriptions velo answers itself: `/v1/models`, `/api/tags`, `/api/ps`,
 * `/api/show`, `/api/version`. Upstream models come from each upstream's own list, managed models
 * from their GGUF headers.
 */
import { createHash } from 'node:crypto'
import { stat } from 'node:fs/promises'
import { errorMessage, VeloError } from '../core/errors.js'
import { readGguf } from '../core/gguf/read.js'
import type { CatalogEntry } from './catalog.js'
import type { ProxyState } from './context.js'
import { upstreamErrorMessage } from './errors.js'
import { describeNetworkError } from './upstreams.js'

/** What /api/tags and /api/show say about a managed GGUF file (read once per file). */
interface GgufFacts {
  size: number
  modifiedAt: string
  digest: string
  architecture: string
  parameterSize: string
  quantization: string
  contextLength: number | undefined
  embeddingLength: number | undefined
  blockCount: number | undefined
  parameterCount: number
  template: string
}

const ggufFacts = new Map<string, Promise<GgufFacts>>()

/** `19.6M`, `7.6B`: how Ollama writes parameter counts. */
export function parameterSize(count: number): string {
  if (count >= 1e9) return `${(count / 1e9).toFixed(1)}B`
  if (count >= 1e6) return `${(count / 1e6).toFixed(1)}M`
  if (count >= 1e3) return `${(count / 1e3).toFixed(1)}K`
  return String(count)
}

function factsOf(path: string): Promise<GgufFacts> {
  let facts = ggufFacts.get(path)
  if (!facts) {
    facts = (async () => {
      const [info, { summary, metadata }] = await Promise.all([stat(path), readGguf(path)])
      const template = metadata['tokenizer.chat_template']?.value
      return {
        size: info.size,
        modifiedAt: info.mtime.toISOString(),
        // A stand-in digest (hashing gigabytes per listing would be slow): path, size and mtime.
        digest: createHash('sha256').update(`${path}:${info.size}:${info.mtimeMs}`).digest('hex'),
        architecture: summary.architecture ?? 'unknown',
        parameterSize: parameterSize(summary.parameterCount),
        quantization: summary.fileType ?? 'unknown',
        contextLength: summary.contextLength,
        embeddingLength: summary.embeddingLength,
        blockCount: summary.blockCount,
        parameterCount: summary.parameterCount,
        template: typeof template === 'string' ? template : '',
      }
    })()
    facts.catch(() => ggufFacts.delete(path))
    ggufFacts.set(path, facts)
  }
  return facts
}

function ggufDetails(facts: GgufFacts) {
  return {
    parent_model: '',
    format: 'gguf',
    family: facts.architecture,
    families: [facts.architecture],
    parameter_size: facts.parameterSize,
    quantization_level: facts.quantization,
  }
}

const EMPTY_DETAILS = {
  parent_model: '',
  format: '',
  family: '',
  families: null,
  parameter_size: '',
  quantization_level: '',
}

function namesOf(entry: CatalogEntry): string[] {
  return [entry.id, ...entry.aliases]
}

/** `allows`: the names the caller's key may use (all when absent). */
export function openaiModels(state: ProxyState, allows: (name: string) => boolean = () => true): unknown {
  const created = Math.floor(state.startedAt.getTime() / 1000)
  return {
    object: 'list',
    data: state.catalog.entries().flatMap((entry) =>
      namesOf(entry)
        .filter(allows)
        .map((id) => ({
          id,
          object: 'model',
          created: entry.created ?? created,
          owned_by: entry.ownedBy,
        })),
    ),
  }
}

export async function openaiModel(state: ProxyState, name: string): Promise<unknown> {
  const entry = await state.resolveModel(name)
  return {
    id: name,
    object: 'model',
    created: entry.created ?? Math.floor(state.startedAt.getTime() / 1000),
    owned_by: entry.ownedBy,
  }
}

async function tagOf(state: ProxyState, entry: CatalogEntry, name: string): Promise<Record<string, unknown>> {
  if (entry.tag) return { ...entry.tag, name, model: name }
  if (entry.managed) {
    try {
      const facts = await factsOf(entry.managed.path)
      return {
        name,
        model: name,
        modified_at: facts.modifiedAt,
        size: facts.size,
        digest: facts.digest,
        details: ggufDetails(facts),
      }
    } catch (error) {
      state.logger.warn({ model: entry.id, err: errorMessage(error) }, 'cannot read GGUF header')
    }
  }
  return {
    name,
    model: name,
    modified_at: state.startedAt.toISOString(),
    size: 0,
    digest: '',
    details: EMPTY_DETAILS,
  }
}

export async function ollamaTags(
  state: ProxyState,
  allows: (name: string) => boolean = () => true,
): Promise<unknown> {
  const tags = await Promise.all(
    state.catalog.entries().flatMap((entry) =>
      namesOf(entry)
        .filter(allows)
        .map((name) => tagOf(state, entry, name)),
    ),
  )
  return { models: tags }
}

/** Loaded models: velo's running llama-servers and what each Ollama upstream has in memory. */
export async function ollamaPs(state: ProxyState): Promise<unknown> {
  const models: Record<string, unknown>[] = []
  for (const status of state.managed.status()) {
    if (status.state !== 'ready') continue
    const entry = state.catalog.resolve(status.id)
    const tag = entry ? await tagOf(state, entry, status.id) : { name: status.id, model: status.id }
    models.push({
      ...tag,
      expires_at: new Date(status.expiresAt ?? Date.now() + 365 * 86_400_000).toISOString(),
      size_vram: 0,
    })
  }
  await Promise.all(
    state.upstreams
      .filter((upstream) => upstream.kind === 'ollama' && upstream.healthy)
      .map(async (upstream) => {
        try {
          const { status, body } = await upstream.getJson('/api/ps')
          const listed = (body as { models?: Record<string, unknown>[] } | undefined)?.models
          if (status === 200 && listed) models.push(...listed)
        } catch (error) {
          upstream.markDown(error)
        }
      }),
  )
  return { models }
}

export async function ollamaShow(state: ProxyState, body: Record<string, unknown>): Promise<unknown> {
  const name = typeof body['model'] === 'string' ? body['model'] : body['name']
  if (typeof name !== 'string' || name === '') {
    throw new VeloError('VELO_BAD_REQUEST', 'model: expected a model name, got nothing')
  }
  const entry = await state.resolveModel(name)
  if (entry.kind === 'ollama' && entry.upstream) {
    const upstream = entry.upstream
    let status: number
    let text: string
    try {
      const response = await upstream.pool.request({
        path: upstream.path('/api/show'),
        method: 'POST',
        headers: { 'content-type': 'application/json', ...upstream.authHeaders() },
        body: JSON.stringify({ ...body, model: entry.upstreamModel, name: undefined }),
        headersTimeout: 10_000,
        bodyTimeout: 10_000,
      })
      status = response.statusCode
      text = await response.body.text()
    } catch (error) {
      upstream.markDown(error)
      throw new VeloError(
        'VELO_UPSTREAM_UNREACHABLE',
        `upstream ${upstream.name} is unreachable (${describeNetworkError(error)})`,
        { suggestion: 'check that the upstream is running; GET /velo/status shows each upstream' },
      )
    }
    if (status !== 200) {
      throw new VeloError(
        'VELO_UPSTREAM_ERROR',
        `upstream ${upstream.name} answered ${status} to /api/show: ${upstreamErrorMessage(text)}`,
        { status: status < 500 ? status : 502 },
      )
    }
    try {
      return JSON.parse(text) as unknown
    } catch {
      throw new VeloError(
        'VELO_UPSTREAM_ERROR',
        `upstream ${upstream.name} answered /api/show with a body that is not JSON`,
      )
    }
  }
  if (entry.managed) {
    const facts = await factsOf(entry.managed.path)
    const arch = facts.architecture
    const status = state.managed.status().find((model) => model.id === entry.id)
    const capabilities = ['completion']
    if (/tools/.test(facts.template)) capabilities.push('tools')
    if (entry.managed.args.includes('--embeddings') || entry.managed.args.includes('--embedding')) {
      capabilities.push('embedding')
    }
    return {
      license: '',
      modelfile: `# served by velo: managed llama-server\nFROM ${entry.managed.path}\n`,
      parameters: (status?.args ?? entry.managed.args).join(' '),
      template: facts.template,
      details: ggufDetails(facts),
      model_info: {
        'general.architecture': arch,
        'general.parameter_count': facts.parameterCount,
        [`${arch}.context_length`]: facts.contextLength,
        [`${arch}.embedding_length`]: facts.embeddingLength,
        [`${arch}.block_count`]: facts.blockCount,
      },
      capabilities,
      modified_at: facts.modifiedAt,
    }
  }
  return {
    license: '',
    modelfile: '',
    parameters: '',
    template: '',
    details: EMPTY_DETAILS,
    model_info: {},
    capabilities: ['completion'],
    modified_at: state.startedAt.toISOString(),
  }
}

export function ollamaVersion(state: ProxyState): unknown {
  const ollama = state.upstreams.find((upstream) => upstream.kind === 'ollama' && upstream.version)
  return { version: ollama?.version ?? state.version }
}
