import { describe, expect, it } from 'vitest'
import type { ModelShape } from '../../src/core/optimize/memory.js'
import {
  buildSpace,
  candidateKey,
  complete,
  describeCandidate,
  enumerateGrid,
  invalidReason,
  memoryParams,
  restrictSpace,
  type SpaceInput,
} from '../../src/core/optimize/space.js'

const cpu: SpaceInput = {
  backend: 'llama-server',
  goal: 'speed',
  cores: 2,
  minCtx: 4096,
  concurrency: 1,
  layers: 12,
  gpu: false,
}

const names = (input: SpaceInput) => buildSpace(input).dimensions.map((d) => d.name)

describe('search space', () => {
  it('searches what single-stream generation responds to for speed, and pins context and one slot', () => {
    const space = buildSpace(cpu)
    expect(names(cpu)).toEqual(['threads', 'flashAttention', 'kvCache'])
    expect(space.fixed).toEqual({ ctx: 4096, parallel: 1 })
    // The default of every axis is `{}`: the search starts at the baseline itself.
    for (const dimension of space.dimensions) expect(dimension.options[0]).toEqual({})
    expect(space.dimensions[0]?.options).toEqual([{}, { threads: 1 }])
  })

  it('adds batch sizes for latency and slots for throughput, and GPU layers when there is a GPU', () => {
    expect(names({ ...cpu, goal: 'latency' })).toEqual([
      'threads',
      'flashAttention',
      'kvCache',
      'ubatch',
      'batch',
    ])
    const throughput = { ...cpu, goal: 'throughput' as const, concurrency: 4, gpu: true }
    expect(names(throughput)).toEqual([
      'gpuLayers',
      'threads',
      'parallel',
      'flashAttention',
      'kvCache',
      'ubatch',
      'batch',
    ])
    const space = buildSpace(throughput)
    const parallel = space.dimensions.find((d) => d.name === 'parallel')?.options
    // 4 is llama-server's own default (`{}`), so it is not offered twice.
    expect(parallel).toEqual([{}, { parallel: 1 }, { parallel: 2 }, { parallel: 8 }])
    const gpu = space.dimensions.find((d) => d.name === 'gpuLayers')?.options
    expect(gpu).toContainEqual({ gpuLayers: 0 })
    expect(gpu).toContainEqual({ gpuLayers: 13 })
  })

  it('offers Ollama only what a request can set', () => {
    const input = { ...cpu, backend: 'ollama' as const, goal: 'throughput' as const, cores: 16 }
    expect(names(input)).toEqual(['threads', 'batch'])
    expect(buildSpace(input).fixed).toEqual({ ctx: 4096 })
    expect(buildSpace(input).dimensions[0]?.options).toEqual([
      {},
      { threads: 4 },
      { threads: 8 },
      { threads: 12 },
    ])
    // Every batch size is a valid request, whatever llama-server's micro-batch default.
    expect(enumerateGrid(buildSpace(input))).toHaveLength(4 * 4)
  })

  it('gives throughput candidates the minimum context per slot', () => {
    const space = buildSpace({ ...cpu, goal: 'throughput', concurrency: 4 })
    expect(complete(space, { parallel: 8 })).toEqual({ parallel: 8, ctx: 8 * 4096 })
    expect(complete(space, {})).toEqual({ ctx: 4 * 4096 })
  })

  it('rules out combinations the engine refuses or rewrites', () => {
    expect(invalidReason({ cacheTypeK: 'q8_0', cacheTypeV: 'q8_0', flashAttention: 'off' })).toMatch(
      /flash attention/,
    )
    expect(invalidReason({ cacheTypeK: 'q8_0', flashAttention: 'off' })).toBeUndefined()
    expect(invalidReason({ ubatch: 1024, batch: 512 })).toMatch(/ubatch 1024 above batch 512/)
    expect(invalidReason({})).toBeUndefined()
    // Ollama's num_batch is the micro-batch too: a small batch is no clash there.
    expect(invalidReason({ batch: 128 }, 'ollama')).toBeUndefined()
    expect(invalidReason({ batch: 128 })).toMatch(/ubatch 512 above batch 128/)
  })

  it('enumerates the valid grid', () => {
    // threads 2 x fa 2 x kv 3, less the two quantized-V caches without flash attention for each thread count.
    expect(enumerateGrid(buildSpace(cpu))).toHaveLength(8)
    const latency = enumerateGrid(buildSpace({ ...cpu, goal: 'latency' }))
    expect(latency.every((c) => invalidReason(c) === undefined)).toBe(true)
    expect(new Set(latency.map(candidateKey)).size).toBe(latency.length)
  })

  it('restricts the search to named axes, keeping the rest at their defaults', () => {
    const throughput = buildSpace({ ...cpu, goal: 'throughput', concurrency: 4 })
    expect(enumerateGrid(throughput)).toHaveLength(352)
    const reduced = restrictSpace(throughput, ['parallel', 'threads', 'parallel'])
    // Scan order stays the space's own, whatever order the names came in.
    expect(reduced.dimensions.map((d) => d.name)).toEqual(['threads', 'parallel'])
    expect(enumerateGrid(reduced)).toHaveLength(2 * 4)
    expect(enumerateGrid(reduced).every((c) => c.ubatch === undefined && c.cacheTypeK === undefined)).toBe(
      true,
    )
    // An axis this backend has no use for adds nothing; an unknown name is an error naming the valid ones.
    expect(restrictSpace(throughput, ['threads', 'gpuLayers']).dimensions.map((d) => d.name)).toEqual([
      'threads',
    ])
    expect(() => restrictSpace(throughput, ['threads', 'slots'])).toThrow(
      /axes: expected one or more of .*parallel.*got slots/,
    )
    expect(() => restrictSpace(throughput, [' '])).toThrow(/got none/)
  })

  it('keys candidates by content, not key order', () => {
    expect(candidateKey({ threads: 1, ctx: 4096 })).toBe(candidateKey({ ctx: 4096, threads: 1 }))
    expect(candidateKey({ threads: 1, batch: undefined })).toBe(candidateKey({ threads: 1 }))
    expect(describeCandidate({})).toBe('defaults')
    expect(
      describeCandidate({ threads: 1, cacheTypeK: 'q8_0', cacheTypeV: 'q8_0', flashAttention: 'on' }),
    ).toBe('t=1 fa=on kv=q8_0')
  })

  it('fills the engine defaults in when estimating a candidate', () => {
    const shape = { layers: 12 } as ModelShape
    expect(memoryParams(shape, {}, 'llama-server', false)).toMatchObject({
      gpuLayers: 0,
      ctx: 0,
      parallel: 4,
      kvUnified: true,
      flashAttention: true,
      batch: 2048,
      ubatch: 512,
    })
    expect(memoryParams(shape, { parallel: 2, flashAttention: 'off' }, 'llama-server', true)).toMatchObject({
      gpuLayers: 13,
      parallel: 2,
      kvUnified: false,
      flashAttention: false,
    })
  })
})
