import { request } from 'undici'
import { errorMessage, VeloError } from '../errors.js'
import { GGMLQuantizationType, tensorBytes } from '../gguf/types.js'
import type { OllamaOptions } from '../profiles/export.js'
import { type ModelShape, shapeFrom } from './memory.js'

async function getJson<T>(url: string, body?: unknown): Promise<T> {
  let response: Awaited<ReturnType<typeof request>>
  try {
    response = await request(url, {
      method: body === undefined ? 'GET' : 'POST',
      headers: { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      headersTimeout: 300_000,
      bodyTimeout: 300_000,
    })
  } catch (error) {
    throw new VeloError('VELO_UPSTREAM_UNREACHABLE', `${url}: ${errorMessage(error)}`, {
      suggestion: 'check that Ollama runs at --url (ollama serve)',
    })
  }
  const text = await response.body.text()
  if (response.statusCode !== 200) {
    throw new VeloError(
      'VELO_UPSTREAM_ERROR',
      `${url} answered ${response.statusCode}: ${text.slice(0, 200)}`,
    )
  }
  return JSON.parse(text) as T
}

export async function ollamaVersion(url: string): Promise<string> {
  const { version } = await getJson<{ version?: string }>(`${url}/api/version`)
  if (typeof version !== 'string') {
    throw new VeloError(
      'VELO_UPSTREAM_ERROR',
      `${url} is not an Ollama server (no version in /api/version)`,
      {
        suggestion: 'optimize takes an Ollama URL with --url; for llama-server pass the GGUF file as --model',
      },
    )
  }
  return version
}

export interface OllamaModel {
  /** The name as Ollama lists it, with its tag (`velo-small:latest`). */
  name: string
  digest: string
  sizeBytes: number
  shape: ModelShape
}

interface ShowResponse {
  model_info?: Record<string, unknown>
  tensors?: Array<{ name: string; type: string; shape: number[] }>
}

function num(value: unknown): number | undefined {
  return typeof value === 'number' ? value : undefined
}

/** The model's digest (from /api/tags) and its shape for the estimator (from /api/show, verbose). */
export async function ollamaModel(url: string, name: string): Promise<OllamaModel> {
  const { models = [] } = await getJson<{ models?: Array<{ name: string; digest: string; size: number }> }>(
    `${url}/api/tags`,
  )
  const wanted = name.includes(':') ? name : `${name}:latest`
  const listed = models.find((m) => m.name === wanted || m.name === name)
  if (!listed) {
    throw new VeloError('VELO_MODEL_NOT_FOUND', `Ollama at ${url} has no model ${name}`, {
      suggestion: `pull or create it first (ollama pull ${name}); models there: ${models.map((m) => m.name).join(', ') || 'none'}`,
    })
  }
  const show = await getJson<ShowResponse>(`${url}/api/show`, { model: listed.name, verbose: true })
  const info = show.model_info ?? {}
  const arch = typeof info['general.architecture'] === 'string' ? info['general.architecture'] : ''
  const key = (suffix: string): number | undefined => num(info[`${arch}.${suffix}`])
  const headCount = key('attention.head_count')
  const embeddingLength = key('embedding_length')
  const shape = shapeFrom({
    path: `${url} ${listed.name}`,
    blockCount: key('block_count'),
    headCount,
    headCountKv: key('attention.head_count_kv') ?? headCount,
    embeddingLength,
    feedForwardLength: key('feed_forward_length'),
    headDim:
      key('attention.key_length') ?? (embeddingLength && headCount ? embeddingLength / headCount : undefined),
    valueLength: key('attention.value_length'),
    vocabSize: key('vocab_size'),
    contextLength: key('context_length'),
    tensors: (show.tensors ?? []).map((tensor) => {
      const type = GGMLQuantizationType[tensor.type as keyof typeof GGMLQuantizationType]
      const elements = tensor.shape.reduce((a, b) => a * b, 1)
      return {
        name: tensor.name,
        type: tensor.type,
        bytes: type === undefined ? undefined : tensorBytes(type, elements),
      }
    }),
  })
  return { name: listed.name, digest: listed.digest, sizeBytes: listed.size, shape }
}

/** `velo-small:latest` -> `velo-small-velo:latest`: the derived model keeps the base's tag. */
export function derivedModelName(base: string): string {
  const [name, tag = 'latest'] = base.split(':')
  return `${name}-velo:${tag}`
}

/** Create `<name>-velo` from the base model with the profile's parameters (a Modelfile's PARAMETER lines). */
export async function createDerivedModel(url: string, base: string, options: OllamaOptions): Promise<string> {
  const model = derivedModelName(base)
  await getJson(`${url}/api/create`, { model, from: base, parameters: options, stream: false })
  return model
}
