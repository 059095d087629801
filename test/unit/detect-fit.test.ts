import { describe, expect, it } from 'vitest'
import {
  bytesReadPerToken,
  cpuBudget,
  decodeUpperBound,
  estimateFit,
  type FitModel,
  gpuBudget,
  kvBytesPerToken,
  unifiedGpuBudget,
} from '../../src/core/detect/fit.js'
import type { GpuInfo, MemoryInfo } from '../../src/core/detect/types.js'

const MIB = 1024 ** 2
const GIB = 1024 ** 3

// Llama 3.1 8B Instruct Q4_K_M: 32 layers, 8 KV heads of 128, 128K trained context, 128256 tokens.
const LLAMA_8B: FitModel = {
  weightsBytes: 4_920_734_720,
  bytesPerToken: 4_920_734_720 - 128256 * 4096 * 0.5625, // token_embd (Q4_K) is a lookup, not a read
  layers: 32,
  kvHeads: 8,
  headDim: 128,
  vocabSize: 128256,
  trainedContext: 131072,
}

function memory(total: number, usable = total): MemoryInfo {
  return {
    totalBytes: total,
    availableBytes: usable,
    swapTotalBytes: 0,
    cgroupLimitBytes: null,
    cgroupUsageBytes: null,
    usableBytes: usable,
  }
}

function gpu(overrides: Partial<GpuInfo>): GpuInfo {
  return {
    index: 0,
    vendor: 'nvidia',
    name: 'test',
    unifiedMemory: false,
    vramTotalBytes: null,
    vramUsedBytes: null,
    vramFreeBytes: null,
    driverVersion: null,
    computeCapability: null,
    memoryBusWidthBits: null,
    memoryClockMhz: null,
    theoreticalBandwidthGBps: null,
    gpuCores: null,
    busId: null,
    uuid: null,
    source: 'nvidia-smi',
    ...overrides,
  }
}

describe('KV cache size', () => {
  it('is layers x kv_heads x head_dim x 2 (K and V) x 2 bytes (f16)', () => {
    // Llama 3 8B: 128 KiB per token, 512 MiB at 4096 tokens.
    expect(kvBytesPerToken(32, 8, 128)).toBe(131072)
    expect((kvBytesPerToken(32, 8, 128) ?? 0) * 4096).toBe(512 * MIB)
    // q8_0 cache would halve it.
    expect(kvBytesPerToken(32, 8, 128, 1)).toBe(65536)
  })

  it('is unknown when the header lacks a dimension', () => {
    expect(kvBytesPerToken(null, 8, 128)).toBeNull()
    expect(kvBytesPerToken(32, 0, 128)).toBeNull()
  })
})

describe('bytes read per token', () => {
  it('skips the token embedding when the model has its own output matrix', () => {
    const tensors = [
      { name: 'token_embd.weight', bytes: 100 },
      { name: 'blk.0.attn_q.weight', bytes: 40 },
      { name: 'output.weight', bytes: 100 },
    ]
    expect(bytesReadPerToken(tensors)).toBe(140)
  })

  it('counts the embedding when the output reuses it (tied embeddings)', () => {
    const tensors = [
      { name: 'token_embd.weight', bytes: 100 },
      { name: 'blk.0.attn_q.weight', bytes: 40 },
    ]
    expect(bytesReadPerToken(tensors)).toBe(140)
  })

  it('counts only the active experts of a mixture of experts', () => {
    const tensors = [
      { name: 'blk.0.attn_q.weight', bytes: 10 },
      { name: 'blk.0.ffn_up_exps.weight', bytes: 800 },
      { name: 'blk.0.ffn_up_shexp.weight', bytes: 20 },
      { name: 'output.weight', bytes: 5 },
    ]
    expect(bytesReadPerToken(tensors, { count: 8, used: 2 })).toBe(10 + 200 + 20 + 5)
    expect(bytesReadPerToken(tensors)).toBe(835)
  })
})

describe('decode upper bound', () => {
  it('is bandwidth / bytes per token', () => {
    expect(decodeUpperBound(5e9, [{ share: 1, bandwidthGBps: 1000 }])).toBeCloseTo(200, 6)
  })

  it('adds up the time on each GPU when layers are split', () => {
    // Half the weights on a 1000 GB/s GPU, half on a 500 GB/s one: 2.5 ms + 5 ms per 5 GB token.
    const bound = decodeUpperBound(5e9, [
      { share: 0.5, bandwidthGBps: 1000 },
      { share: 0.5, bandwidthGBps: 500 },
    ])
    expect(bound).toBeCloseTo(1 / 0.0075, 6)
  })

  it('is unknown without a bandwidth for every device', () => {
    expect(decodeUpperBound(5e9, [{ share: 1, bandwidthGBps: null }])).toBeNull()
    expect(decodeUpperBound(0, [{ share: 1, bandwidthGBps: 100 }])).toBeNull()
  })
})

describe('what fits', () => {
  it('an 8B Q4_K_M fits a 12 GiB GPU with a long but not full context', () => {
    const budget = gpuBudget(
      [gpu({ vramTotalBytes: 12 * GIB, vramFreeBytes: 12 * GIB, theoreticalBandwidthGBps: 504 })],
      memory(32 * GIB),
      null,
    )
    expect(budget?.target).toBe('gpu')
    const fit = estimateFit(LLAMA_8B, budget ?? cpuBudget(memory(0), null))
    expect(fit.fits).toBe(true)
    expect(fit.context).toBe(4096)
    expect(fit.kvBytesPerToken).toBe(131072)
    // reserve = 384 MiB + the logits buffer: 128256 tokens x 512 rows x 4 bytes.
    expect(fit.reserveBytes).toBe(384 * MIB + 128256 * 512 * 4)
    const expected = Math.floor((12 * GIB - LLAMA_8B.weightsBytes - fit.reserveBytes) / 131072)
    expect(fit.maxContext).toBe(expected)
    expect(fit.maxContext).toBeGreaterThan(40_000)
    expect(fit.maxContext).toBeLessThan(131072)
    expect(fit.decodeTokensPerSecondMax).toBeCloseTo(504e9 / LLAMA_8B.bytesPerToken, 0)
    expect(fit.bandwidthSource).toBe('theoretical')
  })

  it('the same model does not fit a 4 GiB GPU, and its max context is 0', () => {
    const budget = gpuBudget(
      [gpu({ vramTotalBytes: 4 * GIB, vramFreeBytes: 4 * GIB })],
      memory(32 * GIB),
      null,
    )
    const fit = estimateFit(LLAMA_8B, budget ?? cpuBudget(memory(0), null))
    expect(fit.fits).toBe(false)
    expect(fit.maxContext).toBe(0)
    expect(fit.decodeTokensPerSecondMax).toBeNull()
  })

  it('caps the max context at the trained context', () => {
    const fit = estimateFit(LLAMA_8B, cpuBudget(memory(256 * GIB), 80))
    expect(fit.maxContext).toBe(131072)
    expect(fit.target).toBe('cpu')
    expect(fit.bandwidthSource).toBe('measured')
  })

  it('uses free VRAM over total, and sums several GPUs', () => {
    const budget = gpuBudget(
      [
        gpu({ index: 0, vramTotalBytes: 24 * GIB, vramFreeBytes: 2 * GIB, theoreticalBandwidthGBps: 936 }),
        gpu({ index: 1, vramTotalBytes: 24 * GIB, vramFreeBytes: 22 * GIB, theoreticalBandwidthGBps: 936 }),
      ],
      memory(64 * GIB),
      null,
    )
    expect(budget?.budgetBytes).toBe(24 * GIB)
    expect(budget?.deviceReserveBytes).toBe(2 * 384 * MIB)
    expect(budget?.devices.map((d) => d.share)).toEqual([2 / 24, 22 / 24])
  })

  it('has no GPU budget without a GPU whose memory is known', () => {
    expect(gpuBudget([], memory(16 * GIB), 50)).toBeNull()
    expect(gpuBudget([gpu({ vramTotalBytes: null })], memory(16 * GIB), 50)).toBeNull()
    expect(gpuBudget([gpu({ vendor: 'intel', vramTotalBytes: GIB })], memory(16 * GIB), 50)).toBeNull()
  })

  it('Apple Silicon: unified memory, about 2/3 of RAM up to 36 GiB and 3/4 above', () => {
    expect(unifiedGpuBudget(memory(24 * GIB, 20 * GIB))).toBe(16 * GIB)
    expect(unifiedGpuBudget(memory(24 * GIB, 10 * GIB))).toBe(10 * GIB)
    expect(unifiedGpuBudget(memory(64 * GIB))).toBe(48 * GIB)
    const budget = gpuBudget([gpu({ vendor: 'apple', unifiedMemory: true })], memory(64 * GIB), 120)
    expect(budget).toMatchObject({ target: 'unified', budgetBytes: 48 * GIB, bandwidthSource: 'measured' })
  })

  it('without KV dimensions it still answers "fits" for the weights, with no max context', () => {
    const fit = estimateFit({ ...LLAMA_8B, layers: null }, cpuBudget(memory(16 * GIB), null))
    expect(fit.fits).toBe(true)
    expect(fit.maxContext).toBeNull()
    expect(fit.kvBytesPerToken).toBeNull()
    expect(fit.decodeTokensPerSecondMax).toBeNull()
  })

  it('a short trained context is the context "fits" is judged at', () => {
    const fit = estimateFit({ ...LLAMA_8B, trainedContext: 2048 }, cpuBudget(memory(16 * GIB), 40))
    expect(fit.context).toBe(2048)
    expect(fit.maxContext).toBe(2048)
  })
})
