import { stat } from 'node:fs/promises'
import { resolve } from 'node:path'
import { type GGUFParseOutput, gguf } from '@huggingface/gguf'
import { errorMessage, VeloError } from '../errors.js'
import {
  fileTypeName,
  type GGMLQuantizationType,
  type GgufValue,
  tensorBytes,
  tensorTypeName,
} from './types.js'

export interface GgufTensorSummary {
  name: string
  shape: number[]
  type: string
  bytes: number | undefined
}

export interface GgufSummary {
  path: string
  fileBytes: number
  version: number
  architecture: string | undefined
  name: string | undefined
  parameterCount: number
  /** Quantization label from `general.file_type`, e.g. `Q4_K_M`, `F16`. */
  fileType: string | undefined
  contextLength: number | undefined
  blockCount: number | undefined
  embeddingLength: number | undefined
  feedForwardLength: number | undefined
  headCount: number | undefined
  headCountKv: number | undefined
  /** Per-head key/value width; from `attention.key_length` or embedding / heads. */
  headDim: number | undefined
  vocabSize: number | undefined
  hasChatTemplate: boolean
  tensorBytes: number
  tensors: GgufTensorSummary[]
}

export interface GgufFile {
  summary: GgufSummary
  /** Every metadata key with its wire type (tokenizer arrays included). */
  metadata: Record<string, GgufValue>
}

function num(value: unknown): number | undefined {
  if (typeof value === 'number') return value
  if (typeof value === 'bigint') return Number(value)
  if (Array.isArray(value) && value.length > 0) return num(value[0])
  return undefined
}

/** Read a GGUF file's header, metadata and tensor table (not its weights). */
export async function readGguf(path: string): Promise<GgufFile> {
  const absolute = resolve(path)
  let parsed: GGUFParseOutput & { parameterCount: number; typedMetadata: Record<string, unknown> }
  let fileBytes: number
  try {
    fileBytes = (await stat(absolute)).size
    parsed = await gguf(absolute, { allowLocalFile: true, typedMetadata: true, computeParametersCount: true })
  } catch (error) {
    throw new VeloError('VELO_GGUF_INVALID', `${path}: not a readable GGUF file (${errorMessage(error)})`, {
      suggestion: 'check that the file is a complete .gguf model',
      cause: error,
    })
  }
  const metadata: Record<string, GgufValue> = {}
  for (const [key, entry] of Object.entries(parsed.typedMetadata)) {
    if (key === 'version' || key === 'tensor_count' || key === 'kv_count') continue
    metadata[key] = entry as GgufValue
  }
  const raw = (key: string): unknown => metadata[key]?.value
  const arch =
    typeof raw('general.architecture') === 'string' ? (raw('general.architecture') as string) : undefined
  const archKey = (suffix: string): number | undefined => (arch ? num(raw(`${arch}.${suffix}`)) : undefined)
  const tensors = parsed.tensorInfos.map((info) => {
    const shape = info.shape.map(Number)
    const elements = shape.reduce((a, b) => a * b, 1)
    return {
      name: info.name,
      shape,
      type: tensorTypeName(info.dtype as GGMLQuantizationType),
      bytes: tensorBytes(info.dtype as GGMLQuantizationType, elements),
    }
  })
  const headCount = archKey('attention.head_count')
  const embeddingLength = archKey('embedding_length')
  const tokens = raw('tokenizer.ggml.tokens')
  const summary: GgufSummary = {
    path: absolute,
    fileBytes,
    version: Number(parsed.metadata.version),
    architecture: arch,
    name: typeof raw('general.name') === 'string' ? (raw('general.name') as string) : undefined,
    parameterCount: parsed.parameterCount,
    fileType: fileTypeName(num(raw('general.file_type'))),
    contextLength: archKey('context_length'),
    blockCount: archKey('block_count'),
    embeddingLength,
    feedForwardLength: archKey('feed_forward_length'),
    headCount,
    headCountKv: archKey('attention.head_count_kv') ?? headCount,
    headDim:
      archKey('attention.key_length') ??
      (embeddingLength && headCount ? Math.floor(embeddingLength / headCount) : undefined),
    vocabSize: archKey('vocab_size') ?? (Array.isArray(tokens) ? tokens.length : undefined),
    hasChatTemplate: typeof raw('tokenizer.chat_template') === 'string',
    tensorBytes: tensors.reduce((sum, t) => sum + (t.bytes ?? 0), 0),
    tensors,
  }
  return { summary, metadata }
}
