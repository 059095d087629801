import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { VeloError } from '../../src/core/errors.js'
import { readGguf } from '../../src/core/gguf/read.js'
import {
  GGMLQuantizationType,
  GGUFValueType,
  type GgufValue,
  tensorBytes,
} from '../../src/core/gguf/types.js'
import { writeGguf } from '../../src/core/gguf/write.js'

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'velo-gguf-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('GGUF write and read', () => {
  it('round-trips metadata of every scalar type, arrays and tensors', async () => {
    const path = join(dir, 'round.gguf')
    const metadata: Record<string, GgufValue> = {
      'general.architecture': { type: GGUFValueType.STRING, value: 'llama' },
      'general.name': { type: GGUFValueType.STRING, value: 'round-trip' },
      'general.file_type': { type: GGUFValueType.UINT32, value: 1 },
      'llama.context_length': { type: GGUFValueType.UINT32, value: 1024 },
      'llama.embedding_length': { type: GGUFValueType.UINT32, value: 64 },
      'llama.block_count': { type: GGUFValueType.UINT32, value: 1 },
      'llama.attention.head_count': { type: GGUFValueType.UINT32, value: 4 },
      'llama.attention.head_count_kv': { type: GGUFValueType.UINT32, value: 2 },
      'llama.rope.freq_base': { type: GGUFValueType.FLOAT32, value: 10000 },
      'test.i8': { type: GGUFValueType.INT8, value: -5 },
      'test.u16': { type: GGUFValueType.UINT16, value: 65000 },
      'test.i64': { type: GGUFValueType.INT64, value: -(2n ** 40n) },
      'test.f64': { type: GGUFValueType.FLOAT64, value: 0.125 },
      'test.flag': { type: GGUFValueType.BOOL, value: true },
      'tokenizer.ggml.tokens': {
        type: GGUFValueType.ARRAY,
        subType: GGUFValueType.STRING,
        value: ['<s>', 'a', 'ü'],
      },
      'tokenizer.ggml.scores': {
        type: GGUFValueType.ARRAY,
        subType: GGUFValueType.FLOAT32,
        value: [0, -1.5, 2],
      },
    }
    const fillWith = (byte: number) => (buffer: Uint8Array) => buffer.fill(byte)
    await writeGguf(path, {
      metadata,
      tensors: [
        { name: 'token_embd.weight', shape: [64, 3], type: GGMLQuantizationType.F16, fill: fillWith(1) },
        { name: 'output_norm.weight', shape: [64], type: GGMLQuantizationType.F32, fill: fillWith(2) },
        { name: 'blk.0.q', shape: [64, 64], type: GGMLQuantizationType.Q8_0, fill: fillWith(3) },
      ],
    })
    const { summary, metadata: read } = await readGguf(path)
    for (const [key, entry] of Object.entries(metadata)) {
      expect(read[key]?.type, key).toBe(entry.type)
      if (entry.type === GGUFValueType.FLOAT32 && !Array.isArray(entry.value)) {
        expect(read[key]?.value).toBeCloseTo(entry.value as number)
      } else {
        expect(read[key]?.value, key).toEqual(entry.value)
      }
    }
    expect(summary.architecture).toBe('llama')
    expect(summary.name).toBe('round-trip')
    expect(summary.fileType).toBe('F16')
    expect(summary.contextLength).toBe(1024)
    expect(summary.headCount).toBe(4)
    expect(summary.headCountKv).toBe(2)
    expect(summary.headDim).toBe(16)
    expect(summary.vocabSize).toBe(3)
    expect(summary.parameterCount).toBe(64 * 3 + 64 + 64 * 64)
    expect(summary.tensors.map((t) => [t.name, t.type, t.shape])).toEqual([
      ['token_embd.weight', 'F16', [64, 3]],
      ['output_norm.weight', 'F32', [64]],
      ['blk.0.q', 'Q8_0', [64, 64]],
    ])
    expect(summary.tensorBytes).toBe(64 * 3 * 2 + 64 * 4 + (64 * 64 * 34) / 32)
  })

  it('knows the block sizes of quantized tensor types', () => {
    expect(tensorBytes(GGMLQuantizationType.Q4_K, 256)).toBe(144)
    expect(tensorBytes(GGMLQuantizationType.Q4_0, 64)).toBe(36)
    expect(tensorBytes(GGMLQuantizationType.F32, 10)).toBe(40)
  })

  it('names a file that is not GGUF in a VeloError', async () => {
    const path = join(dir, 'bad.gguf')
    await writeFile(path, 'this is not a model')
    const error = await readGguf(path).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(VeloError)
    expect((error as VeloError).code).toBe('VELO_GGUF_INVALID')
    expect((error as VeloError).message).toContain('bad.gguf')
  })
})
