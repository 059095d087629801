import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readGgufHeader } from '../../src/core/detect/gguf-header.js'
import { readGguf } from '../../src/core/gguf/read.js'
import { GGMLQuantizationType, GGUFValueType, type GgufValue } from '../../src/core/gguf/types.js'
import { writeGguf } from '../../src/core/gguf/write.js'

let dir: string
let path: string

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'velo-header-'))
  path = join(dir, 'model.gguf')
  const u32 = (value: number): GgufValue => ({ type: GGUFValueType.UINT32, value })
  const tokens = Array.from({ length: 5000 }, (_, i) => `tok_${i}_ü`)
  const metadata: Record<string, GgufValue> = {
    'general.architecture': { type: GGUFValueType.STRING, value: 'qwen2' },
    'general.name': { type: GGUFValueType.STRING, value: 'Header Test' },
    'general.file_type': u32(15),
    'qwen2.context_length': u32(32768),
    'qwen2.embedding_length': u32(128),
    'qwen2.block_count': u32(2),
    'qwen2.feed_forward_length': u32(256),
    'qwen2.attention.head_count': u32(8),
    // Per-layer KV heads, as some architectures store them: both readers take the first.
    'qwen2.attention.head_count_kv': {
      type: GGUFValueType.ARRAY,
      subType: GGUFValueType.INT32,
      value: [2, 4],
    },
    'qwen2.rope.freq_base': { type: GGUFValueType.FLOAT32, value: 1e6 },
    'test.u64': { type: GGUFValueType.UINT64, value: 2n ** 40n },
    'test.i64': { type: GGUFValueType.INT64, value: -5n },
    'test.f64': { type: GGUFValueType.FLOAT64, value: 0.5 },
    'test.bool': { type: GGUFValueType.BOOL, value: true },
    'test.bools': { type: GGUFValueType.ARRAY, subType: GGUFValueType.BOOL, value: [true, false, true] },
    'tokenizer.ggml.model': { type: GGUFValueType.STRING, value: 'gpt2' },
    'tokenizer.ggml.tokens': { type: GGUFValueType.ARRAY, subType: GGUFValueType.STRING, value: tokens },
    'tokenizer.ggml.scores': {
      type: GGUFValueType.ARRAY,
      subType: GGUFValueType.FLOAT32,
      value: tokens.map((_, i) => -i),
    },
    'tokenizer.chat_template': { type: GGUFValueType.STRING, value: '{{ messages }}' },
  }
  const fill = (buffer: Uint8Array) => buffer.fill(0)
  await writeGguf(path, {
    metadata,
    tensors: [
      { name: 'token_embd.weight', shape: [128, 5000], type: GGMLQuantizationType.Q8_0, fill },
      { name: 'blk.0.attn_q.weight', shape: [128, 128], type: GGMLQuantizationType.F16, fill },
      { name: 'blk.0.attn_norm.weight', shape: [128], type: GGMLQuantizationType.F32, fill },
      { name: 'blk.1.ffn_up.weight', shape: [256, 128], type: GGMLQuantizationType.Q4_K, fill },
    ],
  })
})

afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('lean GGUF header reader', () => {
  it('gives the same summary as readGguf without decoding the tokenizer', async () => {
    const lean = await readGgufHeader(path)
    const full = await readGguf(path)
    expect(lean.summary).toEqual(full.summary)
    expect(lean.summary).toMatchObject({
      architecture: 'qwen2',
      fileType: 'Q4_K_M',
      headCountKv: 2,
      vocabSize: 5000,
      hasChatTemplate: true,
    })
    expect(lean.metadata['tokenizer.ggml.tokens']).toEqual({ arrayLength: 5000 })
    expect(lean.metadata['test.u64']).toBe(2n ** 40n)
    expect(lean.metadata['test.bool']).toBe(true)
  })

  it('refuses what it does not read, so callers fall back to readGguf', async () => {
    const garbage = join(dir, 'garbage.gguf')
    await writeFile(garbage, 'definitely not a model')
    await expect(readGgufHeader(garbage)).rejects.toThrow(/not a little-endian GGUF/)
    const v1 = join(dir, 'v1.gguf')
    await writeFile(v1, Buffer.from([0x47, 0x47, 0x55, 0x46, 1, 0, 0, 0, 0, 0, 0, 0]))
    await expect(readGgufHeader(v1)).rejects.toThrow(/version 1/)
  })

  it('fails cleanly on a truncated header', async () => {
    const whole = await readFile(path)
    const cut = join(dir, 'cut.gguf')
    await writeFile(cut, whole.subarray(0, 20_000))
    await expect(readGgufHeader(cut)).rejects.toThrow(/past the end|short read/)
  })
})
