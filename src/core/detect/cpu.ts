import { readFile } from 'node:fs/promises'
import { cpus } from 'node:os'
import si from 'systeminformation'
import type { CpuFeature, CpuInfo } from './types.js'

export interface CpuinfoParse {
  modelName: string | null
  /** x86 `flags` or ARM `Features`, lower case. */
  flags: Set<string>
  logicalCores: number
  /** Distinct (physical id, core id) pairs; null when the kernel does not list them (ARM, some VMs). */
  physicalCores: number | null
}

/** Parse /proc/cpuinfo: the first processor's flags, and the core topology when it is listed. */
export function parseCpuinfo(text: string): CpuinfoParse {
  let modelName: string | null = null
  let flags = new Set<string>()
  let logical = 0
  const cores = new Set<string>()
  let physicalId = ''
  let coreId: string | undefined
  for (const line of `${text}\n`.split('\n')) {
    const colon = line.indexOf(':')
    if (line.trim() === '') {
      if (coreId !== undefined) cores.add(`${physicalId}/${coreId}`)
      physicalId = ''
      coreId = undefined
      continue
    }
    if (colon < 0) continue
    const key = line.slice(0, colon).trim().toLowerCase()
    const value = line.slice(colon + 1).trim()
    if (key === 'processor') logical++
    else if ((key === 'model name' || key === 'hardware' || key === 'cpu model') && modelName === null)
      modelName = value || null
    else if ((key === 'flags' || key === 'features') && flags.size === 0)
      flags = new Set(value.toLowerCase().split(/\s+/).filter(Boolean))
    else if (key === 'physical id') physicalId = value
    else if (key === 'core id') coreId = value
  }
  return { modelName, flags, logicalCores: logical, physicalCores: cores.size > 0 ? cores.size : null }
}

const X86_FEATURES: Record<string, CpuFeature> = {
  avx: 'avx',
  avx2: 'avx2',
  avx512f: 'avx512',
  avx512_vnni: 'avx512_vnni',
  avx512_bf16: 'avx512_bf16',
  avx_vnni: 'avx_vnni',
  amx_tile: 'amx',
  f16c: 'f16c',
  fma: 'fma',
}

const ARM_FEATURES: Record<string, CpuFeature> = {
  asimd: 'neon',
  neon: 'neon',
  asimddp: 'dotprod',
  i8mm: 'i8mm',
  sve: 'sve',
}

const ALL_FEATURES: CpuFeature[] = [
  'avx',
  'avx2',
  'avx512',
  'avx512_vnni',
  'avx512_bf16',
  'avx_vnni',
  'amx',
  'f16c',
  'fma',
  'neon',
  'dotprod',
  'i8mm',
  'sve',
]

/**
 * Map kernel flag names to the features llama.cpp cares about. An empty flag list means we could not
 * read them: every feature is null. Features of the other ISA family are false, since that is certain.
 */
export function featuresFromFlags(flags: Set<string>, arch: string): Record<CpuFeature, boolean | null> {
  const result = Object.fromEntries(ALL_FEATURES.map((f) => [f, null])) as Record<CpuFeature, boolean | null>
  const isArm = arch === 'arm64' || arch === 'arm'
  const isX86 = arch === 'x64' || arch === 'ia32'
  const own = isArm ? ARM_FEATURES : isX86 ? X86_FEATURES : {}
  const other = isArm ? X86_FEATURES : isX86 ? ARM_FEATURES : {}
  for (const feature of Object.values(other)) result[feature] = false
  if (flags.size === 0) {
    // AArch64 makes Advanced SIMD (NEON) mandatory, so it is known even without a flag list.
    if (arch === 'arm64') result.neon = true
    return result
  }
  for (const feature of Object.values(own)) result[feature] = false
  for (const flag of flags) {
    const feature = own[flag]
    if (feature) result[feature] = true
  }
  if (arch === 'arm64') result.neon = true
  return result
}

/** systeminformation's flag list (macOS: `machdep.cpu.features`, where AVX is spelled `avx1.0`). */
function normalizeFlags(text: string): Set<string> {
  return new Set(
    text
      .toLowerCase()
      .split(/\s+/)
      .filter(Boolean)
      .map((flag) => (flag === 'avx1.0' ? 'avx' : flag)),
  )
}

export async function detectCpu(
  notes: string[],
  readText: (path: string) => Promise<string | undefined> = readOptional,
): Promise<CpuInfo> {
  const arch = process.arch
  const [info, cpuinfoText] = await Promise.all([
    si.cpu().catch(() => undefined),
    process.platform === 'linux' ? readText('/proc/cpuinfo') : Promise.resolve(undefined),
  ])
  const parsed = cpuinfoText ? parseCpuinfo(cpuinfoText) : undefined
  let flags = parsed?.flags ?? new Set<string>()
  if (flags.size === 0) {
    const fromSi = await si.cpuFlags().catch(() => '')
    flags = normalizeFlags(fromSi)
  }
  if (flags.size === 0 && arch !== 'arm64') notes.push('cpu: could not read the CPU feature flags')
  const brandParts = [info?.manufacturer, info?.brand].filter((part): part is string => Boolean(part))
  const logical = cpus().length || parsed?.logicalCores || 0
  return {
    brand: parsed?.modelName ?? (brandParts.length > 0 ? brandParts.join(' ') : null),
    vendor: info?.vendor || null,
    architecture: arch,
    physicalCores: info?.physicalCores || parsed?.physicalCores || null,
    logicalCores: logical,
    features: featuresFromFlags(flags, arch),
  }
}

export async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8')
  } catch {
    return undefined
  }
}
