import { VeloError } from '../errors.js'
import type { GgufFile } from '../gguf/read.js'

/** KV cache element types llama.cpp accepts for `-ctk` / `-ctv`, with their bytes per element. */
export const KV_TYPE_BYTES = {
  f32: 4,
  f16: 2,
  bf16: 2,
  q8_0: 34 / 32,
  q5_1: 24 / 32,
  q5_0: 22 / 32,
  q4_1: 20 / 32,
  q4_0: 18 / 32,
  iq4_nl: 18 / 32,
} as const

export type KvType = keyof typeof KV_TYPE_BYTES

export function isKvType(value: string): value is KvType {
  return Object.hasOwn(KV_TYPE_BYTES, value)
}

/** What the estimator needs from a GGUF file: sizes, not weights. */
export interface ModelShape {
  layers: number
  embedding: number
  feedForward: number
  heads: number
  kvHeads: number
  headDimK: number
  headDimV: number
  vocab: number
  trainContext: number
  /** Weight bytes of each `blk.N.*` layer, by layer index. */
  layerBytes: number[]
  /** `token_embd.*`: llama.cpp keeps the input embedding in host memory. */
  inputBytes: number
  /** `output.*`, `output_norm.*` and anything else outside the layers: offloaded with the last layer. */
  outputBytes: number
  /** Bytes per tensor type, for reports (`F16`, `Q4_K`, ...). */
  bytesByType: Record<string, number>
}

function positive(value: number | undefined, what: string, path: string): number {
  if (value === undefined || !Number.isFinite(value) || value <= 0) {
    throw new VeloError('VELO_GGUF_INVALID', `${path}: GGUF metadata lacks ${what}`, {
      suggestion: 'the memory estimator needs a transformer GGUF with block_count and attention heads',
    })
  }
  return value
}

/** The metadata the estimator reads; a GGUF summary has it, and so does Ollama's /api/show. */
export interface ShapeSource {
  /** Where it came from, for error messages. */
  path: string
  blockCount: number | undefined
  headCount: number | undefined
  headCountKv: number | undefined
  embeddingLength: number | undefined
  feedForwardLength: number | undefined
  headDim: number | undefined
  /** `attention.value_length` when it differs from the key length. */
  valueLength?: number | undefined
  vocabSize: number | undefined
  contextLength: number | undefined
  tensors: Array<{ name: string; type: string; bytes: number | undefined }>
}

/** Read the estimator's inputs from a GGUF's metadata and tensor table. */
export function modelShape(file: GgufFile): ModelShape {
  const s = file.summary
  const valueLength = s.architecture
    ? file.metadata[`${s.architecture}.attention.value_length`]?.value
    : undefined
  return shapeFrom({ ...s, valueLength: typeof valueLength === 'number' ? valueLength : undefined })
}

export function shapeFrom(s: ShapeSource): ModelShape {
  const layers = positive(s.blockCount, 'block_count', s.path)
  const heads = positive(s.headCount, 'attention.head_count', s.path)
  const embedding = positive(s.embeddingLength, 'embedding_length', s.path)
  const headDimK = positive(s.headDim ?? embedding / heads, 'attention.key_length', s.path)
  const headDimV = s.valueLength ?? headDimK
  const layerBytes = new Array<number>(layers).fill(0)
  const bytesByType: Record<string, number> = {}
  let inputBytes = 0
  let outputBytes = 0
  for (const tensor of s.tensors) {
    const bytes = tensor.bytes ?? 0
    bytesByType[tensor.type] = (bytesByType[tensor.type] ?? 0) + bytes
    const layer = /^blk\.(\d+)\./.exec(tensor.name)
    const index = layer ? Number(layer[1]) : -1
    if (index >= 0 && index < layers) layerBytes[index] = (layerBytes[index] ?? 0) + bytes
    else if (tensor.name.startsWith('token_embd')) inputBytes += bytes
    else outputBytes += bytes
  }
  return {
    layers,
    embedding,
    feedForward: s.feedForwardLength ?? 4 * embedding,
    heads,
    kvHeads: s.headCountKv ?? heads,
    headDimK,
    headDimV,
    vocab: s.vocabSize ?? 32_000,
    trainContext: s.contextLength ?? 4096,
    layerBytes,
    inputBytes,
    outputBytes,
    bytesByType,
  }
}

/** The llama.cpp settings that change how much memory a loaded model takes. */
export interface MemoryParams {
  /** Layers in GPU memory; 0 on a CPU-only machine. A value above `layers` offloads the output layer too. */
  gpuLayers: number
  /** Total context (`-c`); 0 means the model's training context, as llama-server does. */
  ctx: number
  /** Server slots (`-np`). */
  parallel: number
  /** One KV buffer shared by all slots (`-kvu`); llama-server's default when `-np` is not given. */
  kvUnified: boolean
  cacheTypeK: KvType
  cacheTypeV: KvType
  flashAttention: boolean
  batch: number
  ubatch: number
}

/** llama-server's defaults: context from the model, 4 slots with a unified KV cache, flash attention auto. */
export function defaultMemoryParams(shape: ModelShape, gpuLayers = 0): MemoryParams {
  return {
    gpuLayers,
    ctx: shape.trainContext,
    parallel: 4,
    kvUnified: true,
    cacheTypeK: 'f16',
    cacheTypeV: 'f16',
    // `-fa auto` turns flash attention on wherever the backend supports it (CPU, CUDA, Metal).
    flashAttention: true,
    batch: 2048,
    ubatch: 512,
  }
}

export interface DeviceBytes {
  host: number
  device: number
}

export interface MemoryEstimate {
  weights: DeviceBytes
  kv: DeviceBytes
  compute: DeviceBytes
  /** Logits buffer (`output buffer size`), always in host memory. */
  output: number
  /** KV cells llama.cpp allocates after padding each slot's context. */
  kvCells: number
  total: DeviceBytes
}

/** llama.cpp pads each sequence's context to a multiple of 256 cells. */
const CTX_PAD = 256

function padTo(value: number, multiple: number): number {
  return Math.ceil(value / multiple) * multiple
}

/** KV cache bytes per token across all layers: layers x kv heads x (K dim x K bytes + V dim x V bytes). */
export function kvBytesPerToken(shape: ModelShape, cacheTypeK: KvType, cacheTypeV: KvType): number {
  return (
    shape.layers *
    shape.kvHeads *
    (shape.headDimK * KV_TYPE_BYTES[cacheTypeK] + shape.headDimV * KV_TYPE_BYTES[cacheTypeV])
  )
}

/**
 * Peak bytes of one forward pass over `tokens` tokens attending to `kvLength` cells, as llama.cpp's
 * graph allocator reserves it. Calibrated against llama-server's `compute buffer size` (see
 * docs/optimize.md): with flash attention the FFN activations dominate (gate, up and their
 * product, f32) plus the f16 mask; without it the f32 attention scores (heads x cells) do once the
 * context grows. The 1.08 covers the allocator's fragmentation in the FFN phase.
 */
export function computeBytes(
  shape: ModelShape,
  tokens: number,
  kvLength: number,
  flashAttention: boolean,
): number {
  const f32 = 4
  const ffn = 3 * shape.feedForward * f32 + 4 * shape.embedding * f32
  const inputs = 18
  if (flashAttention) return tokens * (2 * kvLength + ffn + inputs)
  const kvWidth = shape.kvHeads * shape.headDimK
  const attention =
    kvLength * (shape.heads * f32 + f32) + 5 * shape.embedding * f32 + 2 * kvWidth * f32 + inputs
  return tokens * Math.max(attention, ffn * 1.08)
}

/** Predict host and GPU memory for a model loaded by llama-server with these settings. */
export function estimateMemory(shape: ModelShape, params: MemoryParams): MemoryEstimate {
  const parallel = Math.max(1, params.parallel)
  const ctx = params.ctx > 0 ? params.ctx : shape.trainContext
  const seqCells = padTo(Math.ceil(ctx / parallel), CTX_PAD)
  const kvCells = params.kvUnified ? padTo(ctx, CTX_PAD) : seqCells * parallel
  const offloaded = Math.max(0, Math.min(params.gpuLayers, shape.layers))
  const outputOnDevice = params.gpuLayers > shape.layers

  const deviceLayerBytes = shape.layerBytes.slice(shape.layers - offloaded).reduce((a, b) => a + b, 0)
  const allLayerBytes = shape.layerBytes.reduce((a, b) => a + b, 0)
  const weights: DeviceBytes = {
    device: deviceLayerBytes + (outputOnDevice ? shape.outputBytes : 0),
    host: allLayerBytes - deviceLayerBytes + shape.inputBytes + (outputOnDevice ? 0 : shape.outputBytes),
  }

  const kvPerLayer = kvBytesPerToken(shape, params.cacheTypeK, params.cacheTypeV) / shape.layers
  const kv: DeviceBytes = {
    device: kvPerLayer * kvCells * offloaded,
    host: kvPerLayer * kvCells * (shape.layers - offloaded),
  }

  const tokens = Math.max(1, Math.min(params.ubatch, params.batch, kvCells))
  const kvLength = params.kvUnified ? kvCells : seqCells
  const graph = computeBytes(shape, tokens, kvLength, params.flashAttention)
  // With layers on a GPU the graph runs there; the host keeps the input embeddings and logits.
  const compute: DeviceBytes =
    offloaded > 0
      ? { device: graph, host: tokens * shape.embedding * 4 * 2 + parallel * shape.vocab * 4 }
      : { device: 0, host: graph }

  const output = parallel * shape.vocab * 4
  return {
    weights,
    kv,
    compute,
    output,
    kvCells,
    total: {
      host: weights.host + kv.host + compute.host + output,
      device: weights.device + kv.device + compute.device,
    },
  }
}

/** Buffers llama-server reports at load, in bytes, split by host and device. */
export interface ReportedAllocations {
  weights: DeviceBytes
  kv: DeviceBytes
  compute: DeviceBytes
  output: number
  /** Whether every kind of buffer was seen (model, KV and compute). */
  complete: boolean
}

const BUFFER_LINE = /(\S+)\s+(model|KV|compute|output) buffer size\s*=\s*([\d.]+)\s*MiB/
const KV_SELF_LINE = /KV self size\s*=\s*([\d.]+)\s*MiB/

function isHostBuffer(name: string): boolean {
  return name.startsWith('CPU') || name.endsWith('_Host') || name === 'Host'
}

/**
 * Parse llama-server's load log (`-lv 4` or more) for what it allocated: `model buffer size`,
 * `KV buffer size` (or the older `KV self size`), `compute buffer size` and `output buffer size`.
 */
export function parseAllocations(log: string): ReportedAllocations {
  const result: ReportedAllocations = {
    weights: { host: 0, device: 0 },
    kv: { host: 0, device: 0 },
    compute: { host: 0, device: 0 },
    output: 0,
    complete: false,
  }
  const seen = new Set<string>()
  let kvSelfBytes = 0
  for (const line of log.split('\n')) {
    const match = BUFFER_LINE.exec(line)
    if (match) {
      const [, device = '', kind = '', mib = '0'] = match
      const bytes = Number(mib) * 1024 ** 2
      const side = isHostBuffer(device) ? 'host' : 'device'
      seen.add(kind)
      if (kind === 'model') result.weights[side] += bytes
      else if (kind === 'KV') result.kv[side] += bytes
      else if (kind === 'compute') result.compute[side] += bytes
      else result.output += bytes
      continue
    }
    const kvSelf = KV_SELF_LINE.exec(line)
    if (kvSelf) kvSelfBytes += Number(kvSelf[1]) * 1024 ** 2
  }
  // Older builds print only the KV total, without a per-device buffer line.
  if (!seen.has('KV') && kvSelfBytes > 0) {
    result.kv.host = kvSelfBytes
    seen.add('KV')
  }
  result.complete = seen.has('model') && seen.has('KV') && seen.has('compute')
  return result
}

export function totalBytes(bytes: DeviceBytes): number {
  return bytes.host + bytes.device
}
