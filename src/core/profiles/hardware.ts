import { createHash } from 'node:crypto'
import { cpus, totalmem } from 'node:os'
import { execa } from 'execa'
import { z } from 'zod'

export const gpuSchema = z.strictObject({
  name: z.string(),
  vramBytes: z.number().int().nonnegative(),
})

export const hardwareSchema = z.strictObject({
  /** sha256 (first 16 hex digits) of the fields below; profiles match a machine by it. */
  fingerprint: z.string().regex(/^[0-9a-f]{16}$/, 'expected 16 hex digits'),
  cpuModel: z.string(),
  cores: z.number().int().positive(),
  ramBytes: z.number().int().positive(),
  gpus: z.array(gpuSchema),
})

export type Gpu = z.infer<typeof gpuSchema>
export type Hardware = z.infer<typeof hardwareSchema>

export interface GpuMemory extends Gpu {
  freeBytes: number
}

const MIB = 1024 ** 2
const GIB = 1024 ** 3

/** NVIDIA GPUs with total and free memory, from nvidia-smi; none when it is missing or fails. */
export async function nvidiaGpus(): Promise<GpuMemory[]> {
  const result = await execa(
    'nvidia-smi',
    ['--query-gpu=name,memory.total,memory.free', '--format=csv,noheader,nounits'],
    { reject: false, timeout: 10_000 },
  ).catch(() => undefined)
  if (result?.exitCode !== 0 || typeof result.stdout !== 'string') return []
  const gpus: GpuMemory[] = []
  for (const line of result.stdout.split('\n')) {
    const [name, total, free] = line.split(',').map((part) => part.trim())
    if (!name || !total || !free || Number.isNaN(Number(total))) continue
    gpus.push({ name, vramBytes: Number(total) * MIB, freeBytes: Number(free) * MIB })
  }
  return gpus
}

/**
 * This machine as profiles key it. RAM is rounded to whole GiB so that the kernel's reserved
 * memory moving by a few MiB between boots does not make a machine look new.
 */
export async function detectHardware(): Promise<Hardware> {
  const list = cpus()
  const gpus = (await nvidiaGpus()).map(({ name, vramBytes }) => ({ name, vramBytes }))
  return hardwareFrom({
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    cores: Math.max(1, list.length),
    ramBytes: Math.max(1, Math.round(totalmem() / GIB)) * GIB,
    gpus,
  })
}

export function hardwareFrom(fields: Omit<Hardware, 'fingerprint'>): Hardware {
  const canonical = JSON.stringify([
    fields.cpuModel,
    fields.cores,
    fields.ramBytes,
    fields.gpus.map((gpu) => [gpu.name, gpu.vramBytes]),
  ])
  const fingerprint = createHash('sha256').update(canonical).digest('hex').slice(0, 16)
  return { fingerprint, ...fields }
}

export function describeHardware(hardware: Hardware): string {
  const gpus = hardware.gpus.map((gpu) => `${gpu.name} ${(gpu.vramBytes / GIB).toFixed(0)} GiB`)
  return [
    `${hardware.cpuModel} x${hardware.cores}`,
    `${(hardware.ramBytes / GIB).toFixed(0)} GiB RAM`,
    ...gpus,
  ].join(', ')
}
