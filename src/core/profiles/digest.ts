import { createHash } from 'node:crypto'
import { open, stat } from 'node:fs/promises'
import { resolve } from 'node:path'
import { errorMessage, VeloError } from '../errors.js'

/** Bytes hashed from the start of the file: the GGUF header (metadata, tokenizer, tensor table) and then weights. */
const HEAD_BYTES = 16 * 1024 ** 2
/** Bytes hashed from the end: the last weights, so that models with one header but other weights differ. */
const TAIL_BYTES = 1024 ** 2

const memo = new Map<string, { size: number; mtimeMs: number; digest: string }>()

/**
 * A model file's identity for profiles: sha256 over its size, its first 16 MiB and its last 1 MiB.
 * Hashing a whole 40 GB model would take minutes; the header alone is not enough because two
 * models with one architecture (fine-tunes, or synthetic models with other seeds) share it.
 */
export async function ggufDigest(path: string): Promise<string> {
  const absolute = resolve(path)
  let info: Awaited<ReturnType<typeof stat>>
  try {
    info = await stat(absolute)
  } catch (error) {
    throw new VeloError(
      'VELO_MODEL_NOT_FOUND',
      `${path}: cannot read the model file (${errorMessage(error)})`,
      {
        suggestion: 'pass the path of a .gguf file',
      },
    )
  }
  const cached = memo.get(absolute)
  if (cached && cached.size === info.size && cached.mtimeMs === info.mtimeMs) return cached.digest
  const hash = createHash('sha256').update(`gguf-sampled-v1:${info.size}:`)
  const handle = await open(absolute, 'r')
  try {
    const head = Buffer.alloc(Math.min(info.size, HEAD_BYTES))
    await handle.read(head, 0, head.length, 0)
    hash.update(head)
    const tailStart = Math.max(head.length, info.size - TAIL_BYTES)
    const tail = Buffer.alloc(info.size - tailStart)
    if (tail.length > 0) await handle.read(tail, 0, tail.length, tailStart)
    hash.update(tail)
  } finally {
    await handle.close()
  }
  const digest = hash.digest('hex')
  memo.set(absolute, { size: info.size, mtimeMs: info.mtimeMs, digest })
  return digest
}
