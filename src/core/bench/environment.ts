import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { arch, cpus, platform, release, totalmem } from 'node:os'
import type { HardwareInfo } from './types.js'

/** This machine in a few fields, and a short hash that stays the same across runs on it. */
export function hardwareInfo(): HardwareInfo {
  const cpuList = cpus()
  const cpuModel = cpuList[0]?.model.trim() || 'unknown'
  const memoryBytes = totalmem()
  const os = `${platform()} ${release()}`
  const fingerprint = createHash('sha256')
    .update([cpuModel, cpuList.length, Math.round(memoryBytes / 1024 ** 3), arch(), platform()].join('|'))
    .digest('hex')
    .slice(0, 16)
  return { cpuModel, cpuCores: cpuList.length, memoryBytes, os, arch: arch(), fingerprint }
}

let cachedVersion: string | undefined

/** velo's version from its package.json (two levels above src/core/bench and dist/core/bench alike). */
export async function veloVersion(): Promise<string> {
  if (cachedVersion) return cachedVersion
  try {
    const text = await readFile(new URL('../../../package.json', import.meta.url), 'utf8')
    cachedVersion = (JSON.parse(text) as { version?: string }).version ?? 'unknown'
  } catch {
    cachedVersion = 'unknown'
  }
  return cachedVersion
}
