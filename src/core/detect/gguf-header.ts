import { type FileHandle, open } from 'node:fs/promises'
import { resolve } from 'node:path'
import type { GgufSummary } from '../gguf/read.js'
import { fileTypeName, type GGMLQuantizationType, tensorBytes, tensorTypeName } from '../gguf/types.js'

/**
 * A lean GGUF header reader for discovery. readGguf decodes every metadata value, tokenizer arrays
 * included: half a second for a 150k-token vocabulary, which adds up over a folder of models. This
 * reads the same header but steps over array contents (keeping only their length), and yields the
 * same GgufSummary. Only little-endian GGUF v2 and v3 are read here; callers fall back to readGguf
 * for anything else, so its error messages stay the ones users see.
 */

const MAGIC = 0x46554747 // "GGUF" little-endian
const CHUNK = 1 << 20
const MAX_STRING = 1 << 30
const MAX_COUNT = 1 << 28

/** A scalar metadata value; arrays keep their length and, for numbers, their first element. */
export type HeaderValue = string | number | bigint | boolean | { arrayLength: number; first?: number }

/** Element types whose first value is kept (per-layer head counts are stored as such arrays). */
const NUMERIC = new Set([0, 1, 2, 3, 4, 5, 6, 10, 11, 12])

export interface GgufHeader {
  summary: GgufSummary
  metadata: Record<string, HeaderValue>
}

class Cursor {
  private buffer = Buffer.alloc(0)
  private start = 0
  pos = 0

  constructor(
    private readonly file: FileHandle,
    private readonly size: number,
  ) {}

  has(n: number): boolean {
    return this.pos >= this.start && this.pos + n <= this.start + this.buffer.length
  }

  async fill(n: number): Promise<void> {
    if (this.has(n)) return
    if (this.pos + n > this.size) throw new Error('the header runs past the end of the file')
    const length = Math.min(Math.max(n, CHUNK), this.size - this.pos)
    const buffer = Buffer.allocUnsafe(length)
    const { bytesRead } = await this.file.read(buffer, 0, length, this.pos)
    if (bytesRead < n) throw new Error('short read')
    this.buffer = buffer.subarray(0, bytesRead)
    this.start = this.pos
  }

  private at(n: number): number {
    const offset = this.pos - this.start
    this.pos += n
    return offset
  }

  async u32(): Promise<number> {
    await this.fill(4)
    return this.buffer.readUInt32LE(this.at(4))
  }

  /** A u64 size or count; anything past 2^53 is garbage for a header. */
  async size64(): Promise<number> {
    await this.fill(8)
    const value = this.buffer.readBigUInt64LE(this.at(8))
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error('a size in the header is out of range')
    return Number(value)
  }

  async string(): Promise<string> {
    const length = await this.size64()
    if (length > MAX_STRING) throw new Error('a string in the header is too long')
    await this.fill(length)
    const offset = this.at(length)
    return this.buffer.toString('utf8', offset, offset + length)
  }

  async scalar(type: number): Promise<string | number | bigint | boolean> {
    switch (type) {
      case 0:
        await this.fill(1)
        return this.buffer.readUInt8(this.at(1))
      case 1:
        await this.fill(1)
        return this.buffer.readInt8(this.at(1))
      case 2:
        await this.fill(2)
        return this.buffer.readUInt16LE(this.at(2))
      case 3:
        await this.fill(2)
        return this.buffer.readInt16LE(this.at(2))
      case 4:
        return this.u32()
      case 5:
        await this.fill(4)
        return this.buffer.readInt32LE(this.at(4))
      case 6:
        await this.fill(4)
        return this.buffer.readFloatLE(this.at(4))
      case 7:
        await this.fill(1)
        return this.buffer.readUInt8(this.at(1)) !== 0
      case 8:
        return this.string()
      case 10:
        await this.fill(8)
        return this.buffer.readBigUInt64LE(this.at(8))
      case 11:
        await this.fill(8)
        return this.buffer.readBigInt64LE(this.at(8))
      case 12:
        await this.fill(8)
        return this.buffer.readDoubleLE(this.at(8))
      default:
        throw new Error(`unknown metadata value type ${type}`)
    }
  }

  /** Step over an array's elements without decoding them. */
  async skipArray(type: number, count: number): Promise<void> {
    const width = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 }[type]
    if (width !== undefined) {
      this.pos += width * count
      if (this.pos > this.size) throw new Error('an array runs past the end of the file')
      return
    }
    if (type === 8) {
      for (let i = 0; i < count; i++) {
        if (!this.has(8)) await this.fill(8)
        const length = this.buffer.readBigUInt64LE(this.at(8))
        if (length > BigInt(MAX_STRING)) throw new Error('a string in the header is too long')
        this.pos += Number(length)
      }
      return
    }
    if (type === 9) {
      for (let i = 0; i < count; i++) {
        const inner = await this.u32()
        await this.skipArray(inner, await this.size64())
      }
      return
    }
    throw new Error(`unknown array element type ${type}`)
  }
}

/** Like readGguf: a number, a bigint as a number, or an array's first element. */
function num(value: HeaderValue | undefined): number | undefined {
  if (typeof value === 'number') return value
  if (typeof value === 'bigint') return Number(value)
  if (typeof value === 'object') return value.first
  return undefined
}

/** Read a GGUF file's header the lean way; throws on anything it does not handle (see above). */
export async function readGgufHeader(path: string): Promise<GgufHeader> {
  const absolute = resolve(path)
  const file = await open(absolute, 'r')
  try {
    const { size } = await file.stat()
    const cursor = new Cursor(file, size)
    if ((await cursor.u32()) !== MAGIC) throw new Error('not a little-endian GGUF file')
    const version = await cursor.u32()
    if (version !== 2 && version !== 3) throw new Error(`GGUF version ${version} is not read here`)
    const tensorCount = await cursor.size64()
    const kvCount = await cursor.size64()
    if (tensorCount > MAX_COUNT || kvCount > MAX_COUNT) throw new Error('implausible counts in the header')
    const metadata: Record<string, HeaderValue> = {}
    for (let i = 0; i < kvCount; i++) {
      const key = await cursor.string()
      const type = await cursor.u32()
      if (type === 9) {
        const elementType = await cursor.u32()
        const count = await cursor.size64()
        if (NUMERIC.has(elementType) && count > 0) {
          const first = await cursor.scalar(elementType)
          await cursor.skipArray(elementType, count - 1)
          metadata[key] = { arrayLength: count, first: Number(first) }
        } else {
          await cursor.skipArray(elementType, count)
          metadata[key] = { arrayLength: count }
        }
      } else {
        metadata[key] = await cursor.scalar(type)
      }
    }
    const tensors: GgufSummary['tensors'] = []
    let parameterCount = 0
    for (let i = 0; i < tensorCount; i++) {
      const name = await cursor.string()
      const dims = await cursor.u32()
      if (dims > 8) throw new Error(`tensor ${name} has ${dims} dimensions`)
      const shape: number[] = []
      for (let d = 0; d < dims; d++) shape.push(await cursor.size64())
      const dtype = (await cursor.u32()) as GGMLQuantizationType
      await cursor.size64() // data offset
      const elements = shape.reduce((a, b) => a * b, 1)
      parameterCount += elements
      tensors.push({ name, shape, type: tensorTypeName(dtype), bytes: tensorBytes(dtype, elements) })
    }
    return { summary: summarize(absolute, size, version, metadata, tensors, parameterCount), metadata }
  } finally {
    await file.close()
  }
}

/** The same fields, derived the same way, as readGguf's summary. */
function summarize(
  path: string,
  fileBytes: number,
  version: number,
  metadata: Record<string, HeaderValue>,
  tensors: GgufSummary['tensors'],
  parameterCount: number,
): GgufSummary {
  const architecture =
    typeof metadata['general.architecture'] === 'string' ? metadata['general.architecture'] : undefined
  const archKey = (suffix: string): number | undefined =>
    architecture ? num(metadata[`${architecture}.${suffix}`]) : undefined
  const headCount = archKey('attention.head_count')
  const embeddingLength = archKey('embedding_length')
  const tokens = metadata['tokenizer.ggml.tokens']
  const name = metadata['general.name']
  return {
    path,
    fileBytes,
    version,
    architecture,
    name: typeof name === 'string' ? name : undefined,
    parameterCount,
    fileType: fileTypeName(num(metadata['general.file_type'])),
    contextLength: archKey('context_length'),
    blockCount: archKey('block_count'),
    embeddingLength,
    feedForwardLength: archKey('feed_forward_length'),
    headCount,
    headCountKv: archKey('attention.head_count_kv') ?? headCount,
    headDim:
      archKey('attention.key_length') ??
      (embeddingLength && headCount ? Math.floor(embeddingLength / headCount) : undefined),
    vocabSize:
      archKey('vocab_size') ??
      (typeof tokens === 'object' && tokens !== null ? tokens.arrayLength : undefined),
    hasChatTemplate: typeof metadata['tokenizer.chat_template'] === 'string',
    tensorBytes: tensors.reduce((sum, t) => sum + (t.bytes ?? 0), 0),
    tensors,
  }
}
