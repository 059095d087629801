import { describe, expect, it } from 'vitest'
import { SYNTH_SHAPES, type SynthSize } from '../../src/core/models/synth.js'
import {
  computeBytes,
  estimateMemory,
  kvBytesPerToken,
  type MemoryParams,
  type ModelShape,
  parseAllocations,
  shapeFrom,
} from '../../src/core/optimize/memory.js'

const MIB = 1024 ** 2

/** The synthetic models' shapes, tensor by tensor, as their GGUF tables list them. */
function synthShape(size: SynthSize): ModelShape {
  const s = SYNTH_SHAPES[size]
  const vocab = 32_000
  const kvWidth = (s.embedding / s.heads) * s.kvHeads
  const f16 = (...dims: number[]) => dims.reduce((a, b) => a * b, 1) * 2
  const tensors = [{ name: 'token_embd.weight', type: 'F16', bytes: f16(s.embedding, vocab) }]
  for (let i = 0; i < s.layers; i++) {
    tensors.push(
      { name: `blk.${i}.attn_norm.weight`, type: 'F32', bytes: s.embedding * 4 },
      { name: `blk.${i}.attn_q.weight`, type: 'F16', bytes: f16(s.embedding, s.embedding) },
      { name: `blk.${i}.attn_k.weight`, type: 'F16', bytes: f16(s.embedding, kvWidth) },
      { name: `blk.${i}.attn_v.weight`, type: 'F16', bytes: f16(s.embedding, kvWidth) },
      { name: `blk.${i}.attn_output.weight`, type: 'F16', bytes: f16(s.embedding, s.embedding) },
      { name: `blk.${i}.ffn_norm.weight`, type: 'F32', bytes: s.embedding * 4 },
      { name: `blk.${i}.ffn_gate.weight`, type: 'F16', bytes: f16(s.embedding, s.feedForward) },
      { name: `blk.${i}.ffn_up.weight`, type: 'F16', bytes: f16(s.embedding, s.feedForward) },
      { name: `blk.${i}.ffn_down.weight`, type: 'F16', bytes: f16(s.feedForward, s.embedding) },
    )
  }
  tensors.push(
    { name: 'output_norm.weight', type: 'F32', bytes: s.embedding * 4 },
    { name: 'output.weight', type: 'F16', bytes: f16(s.embedding, vocab) },
  )
  return shapeFrom({
    path: `velo-${size}`,
    blockCount: s.layers,
    headCount: s.heads,
    headCountKv: s.kvHeads,
    embeddingLength: s.embedding,
    feedForwardLength: s.feedForward,
    headDim: s.embedding / s.heads,
    vocabSize: vocab,
    contextLength: s.contextLength,
    tensors,
  })
}

const base: MemoryParams = {
  gpuLayers: 0,
  ctx: 4096,
  parallel: 1,
  kvUnified: false,
  cacheTypeK: 'f16',
  cacheTypeV: 'f16',
  flashAttention: true,
  batch: 2048,
  ubatch: 512,
}

describe('KV cache bytes per token', () => {
  it('is layers x kv heads x head dim x 2 x bytes of the KV type', () => {
    const small = synthShape('small')
    // 12 layers, 4 KV heads of 64: 12 * 4 * 64 * 2 * 2 bytes.
    expect(kvBytesPerToken(small, 'f16', 'f16')).toBe(12 * 4 * 64 * 2 * 2)
    expect(kvBytesPerToken(small, 'q8_0', 'q8_0')).toBeCloseTo(12 * 4 * 64 * 2 * (34 / 32))
    expect(kvBytesPerToken(small, 'q4_0', 'q4_0')).toBeCloseTo(12 * 4 * 64 * 2 * (18 / 32))
    expect(kvBytesPerToken(small, 'q8_0', 'f16')).toBeCloseTo(12 * 4 * 64 * (34 / 32 + 2))
  })
})

/**
 * What llama-server (velo's engine build) reported for these settings, in MiB: model buffer, KV
 * buffer, compute buffer, output buffer. The integration test checks the live engine; these keep
 * the formulas honest without one.
 */
const REPORTED: Array<{
  size: SynthSize
  params: Partial<MemoryParams>
  mib: [number, number, number, number]
}> = [
  { size: 'tiny', params: { ctx: 512, flashAttention: true }, mib: [37.29, 2, 6.54, 0.12] },
  { size: 'tiny', params: { ctx: 2048, flashAttention: false }, mib: [37.29, 8, 23.51, 0.12] },
  { size: 'tiny', params: { ctx: 4096, parallel: 4 }, mib: [37.29, 16, 7.04, 0.49] },
  { size: 'tiny', params: { ctx: 1000, parallel: 3, ubatch: 256 }, mib: [37.29, 6, 3.3, 0.37] },
  {
    size: 'small',
    params: { ctx: 8192, parallel: 2, flashAttention: false },
    mib: [237.82, 96, 112.51, 0.24],
  },
  { size: 'small', params: { cacheTypeK: 'q8_0', cacheTypeV: 'q8_0' }, mib: [237.82, 25.5, 20.54, 0.12] },
  { size: 'small', params: { cacheTypeK: 'q4_0', cacheTypeV: 'q4_0' }, mib: [237.82, 13.5, 20.54, 0.12] },
  {
    size: 'small',
    params: { ctx: 2048, parallel: 2, flashAttention: false, cacheTypeK: 'q8_0', batch: 256, ubatch: 128 },
    mib: [237.82, 18.38, 8.27, 0.24],
  },
  // llama-server's defaults: the model's context, 4 slots sharing one KV buffer.
  { size: 'small', params: { ctx: 0, parallel: 4, kvUnified: true }, mib: [237.82, 96, 26.01, 0.49] },
]

describe('memory estimate against what llama-server reported', () => {
  for (const { size, params, mib } of REPORTED) {
    it(`${size} ${JSON.stringify(params)} is within 10% for every buffer`, () => {
      const estimate = estimateMemory(synthShape(size), { ...base, ...params })
      const [weights, kv, compute, output] = mib
      expect(estimate.weights.host / MIB).toBeCloseTo(weights, 1)
      expect(Math.abs(estimate.kv.host / MIB - kv) / kv).toBeLessThan(0.01)
      expect(Math.abs(estimate.compute.host / MIB - compute) / compute).toBeLessThan(0.1)
      expect(estimate.output / MIB).toBeCloseTo(output, 1)
      const total = weights + kv + compute + output
      expect(Math.abs(estimate.total.host / MIB - total) / total).toBeLessThan(0.1)
      expect(estimate.total.device).toBe(0)
    })
  }

  it('grows the attention scores with the context when flash attention is off', () => {
    const small = synthShape('small')
    const short = computeBytes(small, 512, 1024, false)
    const long = computeBytes(small, 512, 8192, false)
    expect(long).toBeGreaterThan(3 * short)
    expect(computeBytes(small, 512, 8192, true)).toBeLessThan(long / 4)
  })
})

describe('GPU offload', () => {
  it('moves the last layers weights and KV to the device, the output layer only past the layer count', () => {
    const small = synthShape('small')
    const none = estimateMemory(small, base)
    const half = estimateMemory(small, { ...base, gpuLayers: 6 })
    const all = estimateMemory(small, { ...base, gpuLayers: 12 })
    const withOutput = estimateMemory(small, { ...base, gpuLayers: 13 })
    const layer = small.layerBytes[0] ?? 0
    expect(half.weights.device).toBe(6 * layer)
    expect(half.kv.device).toBeCloseTo(none.kv.host / 2)
    expect(all.weights.device).toBe(12 * layer)
    expect(withOutput.weights.device).toBe(12 * layer + small.outputBytes)
    expect(withOutput.weights.host).toBe(small.inputBytes)
    expect(all.compute.device).toBeGreaterThan(0)
    expect(none.compute.device).toBe(0)
    // Everything is accounted for once: host plus device is the same model either way.
    expect(half.weights.host + half.weights.device).toBe(none.weights.host)
  })
})

describe('parseAllocations', () => {
  it('reads llama-server’s buffer lines on a CPU', () => {
    const log = `
0.00.075.014 I load_tensors:   CPU_Mapped model buffer size =   237.82 MiB
0.00.075.698 I llama_context:        CPU  output buffer size =     0.24 MiB
0.00.075.784 I llama_kv_cache:        CPU KV buffer size =    48.00 MiB
0.00.096.056 I llama_kv_cache: size =   48.00 MiB (  2048 cells,  12 layers,  2/2 seqs), K (f16):   24.00 MiB, V (f16):   24.00 MiB
0.00.097.364 I sched_reserve:        CPU compute buffer size =    20.01 MiB`
    const reported = parseAllocations(log)
    expect(reported.complete).toBe(true)
    expect(reported.weights).toEqual({ host: 237.82 * MIB, device: 0 })
    expect(reported.kv).toEqual({ host: 48 * MIB, device: 0 })
    expect(reported.compute).toEqual({ host: 20.01 * MIB, device: 0 })
    expect(reported.output).toBeCloseTo(0.24 * MIB)
  })

  it('splits host and GPU buffers', () => {
    const log = `
load_tensors:        CUDA0 model buffer size =   200.00 MiB
load_tensors:   CPU_Mapped model buffer size =    37.82 MiB
llama_kv_cache:      CUDA0 KV buffer size =    48.00 MiB
llama_context:  CUDA_Host  output buffer size =     0.12 MiB
sched_reserve:      CUDA0 compute buffer size =    22.01 MiB
sched_reserve:  CUDA_Host compute buffer size =     9.01 MiB`
    const reported = parseAllocations(log)
    expect(reported.weights).toEqual({ host: 37.82 * MIB, device: 200 * MIB })
    expect(reported.kv).toEqual({ host: 0, device: 48 * MIB })
    expect(reported.compute).toEqual({ host: 9.01 * MIB, device: 22.01 * MIB })
  })

  it('falls back to the older KV self size line and says when a kind is missing', () => {
    const old = parseAllocations(
      'llm_load_tensors:        CPU buffer size =   237.82 MiB\nllama_new_context_with_model: KV self size  =   48.00 MiB, K (f16):   24.00 MiB',
    )
    expect(old.kv.host).toBe(48 * MIB)
    expect(old.complete).toBe(false)
    expect(parseAllocations('nothing here').complete).toBe(false)
  })
})
