import { open } from 'node:fs/promises'
import { GGMLQuantizationType, GGUFValueType, type GgufScalar, type GgufValue, tensorBytes } from './types.js'

export interface GgufTensorSpec {
  name: string
  /** GGUF order: the fastest-varying dimension first (ne[0]). */
  shape: number[]
  type: GGMLQuantizationType
  /** Fill the tensor's bytes; called once, in file order, so large models stream to disk. */
  fill: (buffer: Uint8Array) => void
}

export interface GgufWriteSpec {
  metadata: Record<string, GgufValue>
  tensors: GgufTensorSpec[]
  alignment?: number
}

const GGUF_MAGIC = 0x46554747
const GGUF_VERSION = 3

/** Little-endian byte sink with a growable buffer; the header is small, tensor data streams separately. */
class ByteWriter {
  private buffer = Buffer.alloc(1 << 16)
  length = 0

  private reserve(bytes: number): void {
    if (this.length + bytes <= this.buffer.length) return
    const next = Buffer.alloc(Math.max(this.buffer.length * 2, this.length + bytes))
    this.buffer.copy(next, 0, 0, this.length)
    this.buffer = next
  }

  u8(v: number): void {
    this.reserve(1)
    this.buffer.writeUInt8(v, this.length)
    this.length += 1
  }
  i8(v: number): void {
    this.reserve(1)
    this.buffer.writeInt8(v, this.length)
    this.length += 1
  }
  u16(v: number): void {
    this.reserve(2)
    this.buffer.writeUInt16LE(v, this.length)
    this.length += 2
  }
  i16(v: number): void {
    this.reserve(2)
    this.buffer.writeInt16LE(v, this.length)
    this.length += 2
  }
  u32(v: number): void {
    this.reserve(4)
    this.buffer.writeUInt32LE(v, this.length)
    this.length += 4
  }
  i32(v: number): void {
    this.reserve(4)
    this.buffer.writeInt32LE(v, this.length)
    this.length += 4
  }
  f32(v: number): void {
    this.reserve(4)
    this.buffer.writeFloatLE(v, this.length)
    this.length += 4
  }
  f64(v: number): void {
    this.reserve(8)
    this.buffer.writeDoubleLE(v, this.length)
    this.length += 8
  }
  u64(v: number | bigint): void {
    this.reserve(8)
    this.buffer.writeBigUInt64LE(BigInt(v), this.length)
    this.length += 8
  }
  i64(v: number | bigint): void {
    this.reserve(8)
    this.buffer.writeBigInt64LE(BigInt(v), this.length)
    this.length += 8
  }
  string(s: string): void {
    const bytes = Buffer.from(s, 'utf8')
    this.u64(bytes.length)
    this.reserve(bytes.length)
    bytes.copy(this.buffer, this.length)
    this.length += bytes.length
  }
  pad(alignment: number): void {
    while (this.length % alignment !== 0) this.u8(0)
  }
  bytes(): Buffer {
    return this.buffer.subarray(0, this.length)
  }
}

function writeScalar(out: ByteWriter, type: GGUFValueType, value: GgufScalar): void {
  switch (type) {
    case GGUFValueType.UINT8:
      out.u8(Number(value))
      return
    case GGUFValueType.INT8:
      out.i8(Number(value))
      return
    case GGUFValueType.UINT16:
      out.u16(Number(value))
      return
    case GGUFValueType.INT16:
      out.i16(Number(value))
      return
    case GGUFValueType.UINT32:
      out.u32(Number(value))
      return
    case GGUFValueType.INT32:
      out.i32(Number(value))
      return
    case GGUFValueType.FLOAT32:
      out.f32(Number(value))
      return
    case GGUFValueType.FLOAT64:
      out.f64(Number(value))
      return
    case GGUFValueType.UINT64:
      out.u64(typeof value === 'bigint' ? value : BigInt(Number(value)))
      return
    case GGUFValueType.INT64:
      out.i64(typeof value === 'bigint' ? value : BigInt(Number(value)))
      return
    case GGUFValueType.BOOL:
      out.u8(value ? 1 : 0)
      return
    case GGUFValueType.STRING:
      out.string(String(value))
      return
    default:
      throw new Error(`cannot write GGUF value type ${type} as a scalar`)
  }
}

function writeValue(out: ByteWriter, entry: GgufValue): void {
  out.u32(entry.type)
  if (entry.type === GGUFValueType.ARRAY) {
    out.u32(entry.subType)
    out.u64(entry.value.length)
    for (const item of entry.value) writeScalar(out, entry.subType, item)
  } else {
    writeScalar(out, entry.type, entry.value)
  }
}

/** Write a GGUF v3 file: header, metadata, tensor table, then each tensor's data, aligned. */
export async function writeGguf(path: string, spec: GgufWriteSpec): Promise<void> {
  const alignment = spec.alignment ?? 32
  const metadata: Record<string, GgufValue> = { ...spec.metadata }
  if (alignment !== 32) metadata['general.alignment'] = { type: GGUFValueType.UINT32, value: alignment }
  const header = new ByteWriter()
  header.u32(GGUF_MAGIC)
  header.u32(GGUF_VERSION)
  header.u64(spec.tensors.length)
  header.u64(Object.keys(metadata).length)
  for (const [key, entry] of Object.entries(metadata)) {
    header.string(key)
    writeValue(header, entry)
  }
  const sizes: number[] = []
  let offset = 0
  for (const tensor of spec.tensors) {
    const elements = tensor.shape.reduce((a, b) => a * b, 1)
    const size = tensorBytes(tensor.type, elements)
    if (size === undefined) throw new Error(`unsupported tensor type ${tensor.type} for ${tensor.name}`)
    header.string(tensor.name)
    header.u32(tensor.shape.length)
    for (const dim of tensor.shape) header.u64(dim)
    header.u32(tensor.type)
    header.u64(offset)
    sizes.push(size)
    offset += Math.ceil(size / alignment) * alignment
  }
  header.pad(alignment)
  const file = await open(path, 'w')
  try {
    await file.write(header.bytes())
    for (const [index, tensor] of spec.tensors.entries()) {
      const size = sizes[index] ?? 0
      const padded = Math.ceil(size / alignment) * alignment
      const data = new Uint8Array(padded)
      tensor.fill(data.subarray(0, size))
      await file.write(data)
    }
  } finally {
    await file.close()
  }
}

export { GGMLQuantizationType, GGUFValueType }
