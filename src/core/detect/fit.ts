/**
 * "What fits": pure arithmetic on a model's GGUF header and the machine's memory and bandwidth.
 * Every result is an estimate; docs/detect.md states the formulas.
 */
import type { FitTarget, GpuInfo, MemoryInfo, ModelFit } from './types.js'

const MIB = 1024 ** 2
const GIB = 1024 ** 3

/** The context the yes/no "fits" answer is given for (or the trained context, when shorter). */
export const FIT_CONTEXT = 4096
/** llama.cpp's default micro-batch: the logits buffer holds this many rows of the vocabulary. */
const UBATCH = 512
/** Held per discrete GPU for the driver's context (CUDA/ROCm) and scratch. */
const GPU_DEVICE_RESERVE = 384 * MIB
/** Held in RAM for the runtime's own buffers when running on the CPU or unified memory. */
const HOST_RESERVE = 128 * MIB

export interface FitModel {
  /** Bytes of all weights (what must be resident). */
  weightsBytes: number
  /** Bytes of weights read to decode one token (see bytesReadPerToken). */
  bytesPerToken: number
  layers: number | null
  kvHeads: number | null
  headDim: number | null
  vocabSize: number | null
  trainedContext: number | null
}

export interface FitBudget {
  target: FitTarget
  budgetBytes: number
  /** The runtime's overhead apart from the model's logits buffer. */
  deviceReserveBytes: number
  /** Decode speed bound: one device's bandwidth, or several devices that each hold a share of the layers. */
  devices: Array<{ share: number; bandwidthGBps: number | null }>
  bandwidthSource: 'measured' | 'theoretical' | null
}

/** f16 K and V for one token: layers x kv_heads x head_dim x 2 (K and V) x 2 bytes. */
export function kvBytesPerToken(
  layers: number | null,
  kvHeads: number | null,
  headDim: number | null,
  bytesPerElement = 2,
): number | null {
  if (!layers || !kvHeads || !headDim) return null
  return layers * kvHeads * headDim * 2 * bytesPerElement
}

export interface TensorBytes {
  name: string
  bytes: number | undefined
}

/**
 * Bytes of weights one decoded token reads. The token embedding is a lookup of one row, so it does
 * not count unless the output projection reuses it (no separate `output.weight`). In a mixture of
 * experts only `used` of `count` experts run per token, so expert tensors (`*_exps`) count pro rata.
 */
export function bytesReadPerToken(
  tensors: TensorBytes[],
  experts: { count: number; used: number } | null = null,
): number {
  const hasOutput = tensors.some((t) => t.name === 'output.weight')
  let total = 0
  for (const tensor of tensors) {
    const bytes = tensor.bytes ?? 0
    if (tensor.name === 'token_embd.weight' && hasOutput) continue
    if (experts && experts.count > 0 && /_exps\./.test(tensor.name)) {
      total += (bytes * Math.min(experts.used, experts.count)) / experts.count
      continue
    }
    total += bytes
  }
  return Math.round(total)
}

/** Decode tokens/s if every device streamed its share of the weights at full bandwidth. */
export function decodeUpperBound(
  bytesPerToken: number,
  devices: Array<{ share: number; bandwidthGBps: number | null }>,
): number | null {
  if (bytesPerToken <= 0 || devices.length === 0) return null
  let seconds = 0
  for (const device of devices) {
    if (!device.bandwidthGBps || device.bandwidthGBps <= 0) return null
    seconds += (device.share * bytesPerToken) / (device.bandwidthGBps * 1e9)
  }
  return seconds > 0 ? 1 / seconds : null
}

export function estimateFit(model: FitModel, budget: FitBudget): ModelFit {
  const kvPerToken = kvBytesPerToken(model.layers, model.kvHeads, model.headDim)
  const reserve = budget.deviceReserveBytes + (model.vocabSize ?? 0) * UBATCH * 4
  const context = model.trainedContext ? Math.min(model.trainedContext, FIT_CONTEXT) : FIT_CONTEXT
  const free = budget.budgetBytes - model.weightsBytes - reserve
  let maxContext: number | null = null
  if (kvPerToken !== null) {
    maxContext = free > 0 ? Math.floor(free / kvPerToken) : 0
    if (model.trainedContext) maxContext = Math.min(maxContext, model.trainedContext)
  }
  const fits = kvPerToken === null ? free >= 0 : free >= kvPerToken * context
  const bound = decodeUpperBound(model.bytesPerToken, budget.devices)
  const bandwidths = budget.devices.map((d) => d.bandwidthGBps)
  const bandwidthGBps =
    bandwidths.length > 0 && bandwidths.every((b): b is number => b !== null) ? Math.min(...bandwidths) : null
  return {
    target: budget.target,
    budgetBytes: Math.max(0, Math.round(budget.budgetBytes)),
    weightsBytes: model.weightsBytes,
    kvBytesPerToken: kvPerToken,
    reserveBytes: reserve,
    context,
    fits,
    maxContext,
    decodeTokensPerSecondMax: bound === null ? null : Math.round(bound * 10) / 10,
    bandwidthGBps,
    bandwidthSource: bandwidthGBps === null ? null : budget.bandwidthSource,
  }
}

/**
 * Metal lets a process keep about 2/3 of RAM resident on the GPU on machines up to 36 GiB and about
 * 3/4 above (its `recommendedMaxWorkingSetSize`); velo cannot ask Metal, so this is an estimate.
 */
export function unifiedGpuBudget(memory: MemoryInfo): number {
  const share = memory.totalBytes <= 36 * GIB ? 2 / 3 : 3 / 4
  return Math.min(memory.usableBytes, Math.floor(memory.totalBytes * share))
}

/** The GPU budget for this machine: NVIDIA and AMD GPUs with known VRAM together, or unified memory. */
export function gpuBudget(
  gpus: GpuInfo[],
  memory: MemoryInfo,
  measuredGBps: number | null,
): FitBudget | null {
  if (gpus.some((gpu) => gpu.unifiedMemory)) {
    return {
      target: 'unified',
      budgetBytes: unifiedGpuBudget(memory),
      deviceReserveBytes: HOST_RESERVE,
      devices: [{ share: 1, bandwidthGBps: measuredGBps }],
      bandwidthSource: 'measured',
    }
  }
  // CUDA and ROCm GPUs: where llama.cpp and Ollama offload layers. An integrated GPU's "VRAM" is
  // carved out of RAM and is not counted.
  const usable = gpus
    .filter((gpu) => gpu.vendor === 'nvidia' || gpu.vendor === 'amd')
    .map((gpu) => ({ gpu, bytes: gpu.vramFreeBytes ?? gpu.vramTotalBytes }))
    .filter((entry): entry is { gpu: GpuInfo; bytes: number } => entry.bytes !== null && entry.bytes > 0)
  if (usable.length === 0) return null
  const total = usable.reduce((sum, entry) => sum + entry.bytes, 0)
  return {
    target: 'gpu',
    budgetBytes: total,
    deviceReserveBytes: GPU_DEVICE_RESERVE * usable.length,
    // llama.cpp splits layers across GPUs in proportion to their memory; each token passes all of them.
    devices: usable.map((entry) => ({
      share: entry.bytes / total,
      bandwidthGBps: entry.gpu.theoreticalBandwidthGBps,
    })),
    bandwidthSource: 'theoretical',
  }
}

export function cpuBudget(memory: MemoryInfo, measuredGBps: number | null): FitBudget {
  return {
    target: 'cpu',
    budgetBytes: memory.usableBytes,
    deviceReserveBytes: HOST_RESERVE,
    devices: [{ share: 1, bandwidthGBps: measuredGBps }],
    bandwidthSource: 'measured',
  }
}
