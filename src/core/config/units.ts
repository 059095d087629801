import { z } from 'zod'

const BYTE_UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** `10MiB`, `256mb`, `1024` -> bytes. */
export function parseBytes(input: string | number): number | undefined {
  if (typeof input === 'number') return Number.isFinite(input) && input >= 0 ? input : undefined
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(input)
  if (!match) return undefined
  const factor = BYTE_UNITS[(match[2] || 'b').toLowerCase()]
  return factor === undefined ? undefined : Math.round(Number(match[1]) * factor)
}

/** `500ms`, `30s`, `10m`, `1h`, `1000` (ms) -> milliseconds. */
export function parseDuration(input: string | number): number | undefined {
  if (typeof input === 'number') return Number.isFinite(input) && input >= 0 ? input : undefined
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(input)
  if (!match) return undefined
  const factor = DURATION_UNITS[(match[2] || 'ms').toLowerCase()]
  return factor === undefined ? undefined : Math.round(Number(match[1]) * factor)
}

export const bytesSchema = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const bytes = parseBytes(value)
  if (bytes === undefined) {
    ctx.addIssue({
      code: 'custom',
      message: `expected a size like 10MiB or 256mb, got ${JSON.stringify(value)}`,
    })
    return z.NEVER
  }
  return bytes
})

export const durationSchema = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const ms = parseDuration(value)
  if (ms === undefined) {
    ctx.addIssue({
      code: 'custom',
      message: `expected a duration like 500ms, 30s or 10m, got ${JSON.stringify(value)}`,
    })
    return z.NEVER
  }
  return ms
})
