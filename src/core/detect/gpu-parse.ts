/**
 * Parsers for what GPU tools print. Each takes the raw text and returns what it could read, with
 * null for a field the tool did not report; garbage in gives an empty list, never an exception.
 */
import type { GpuInfo, GpuVendor } from './types.js'

const MIB = 1024 ** 2

/** The fields velo asks nvidia-smi for, in order; older drivers reject some (see detectNvidia). */
export const NVIDIA_QUERY_FIELDS = [
  'index',
  'name',
  'uuid',
  'pci.bus_id',
  'memory.total',
  'memory.used',
  'memory.free',
  'driver_version',
  'compute_cap',
  'clocks.max.memory',
  'memory.bus_width',
] as const

/** Theoretical peak bandwidth of DDR-style memory (GDDR, HBM): 2 transfers per clock x bus bytes. */
export function theoreticalBandwidthGBps(
  clockMhz: number | null,
  busWidthBits: number | null,
): number | null {
  if (!clockMhz || !busWidthBits) return null
  return (2 * clockMhz * 1e6 * (busWidthBits / 8)) / 1e9
}

function emptyGpu(index: number, vendor: GpuVendor, source: GpuInfo['source']): GpuInfo {
  return {
    index,
    vendor,
    name: null,
    unifiedMemory: false,
    vramTotalBytes: null,
    vramUsedBytes: null,
    vramFreeBytes: null,
    driverVersion: null,
    computeCapability: null,
    memoryBusWidthBits: null,
    memoryClockMhz: null,
    theoreticalBandwidthGBps: null,
    gpuCores: null,
    busId: null,
    uuid: null,
    source,
  }
}

/** nvidia-smi writes `[N/A]`, `[Not Supported]`, `N/A` or `[Unknown Error]` for what it cannot report. */
function nvidiaValue(raw: string | undefined): string | null {
  const value = raw?.trim()
  if (!value || /^\[.*\]$/.test(value) || value === 'N/A') return null
  return value
}

function nvidiaNumber(raw: string | undefined): number | null {
  const value = nvidiaValue(raw)
  if (value === null) return null
  const n = Number.parseFloat(value)
  return Number.isFinite(n) ? n : null
}

/**
 * `nvidia-smi --query-gpu=... --format=csv,nounits`: a header naming each column (with `[MiB]`-style
 * units even under nounits), then one line per GPU. Columns are found by header name, so any subset
 * of fields parses, in any order.
 */
export function parseNvidiaSmiCsv(text: string): GpuInfo[] {
  const lines = text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter(Boolean)
  const header = lines[0]
  if (!header) return []
  const columns = header.split(',').map((column) => column.trim().replace(/\s*\[.*\]$/, ''))
  if (!columns.includes('name')) return []
  const gpus: GpuInfo[] = []
  for (const line of lines.slice(1)) {
    const cells = line.split(',')
    if (cells.length !== columns.length) continue
    const get = (field: string): string | undefined => {
      const at = columns.indexOf(field)
      return at < 0 ? undefined : cells[at]
    }
    const mib = (field: string): number | null => {
      const n = nvidiaNumber(get(field))
      return n === null ? null : Math.round(n * MIB)
    }
    const index = nvidiaNumber(get('index'))
    const gpu = emptyGpu(index ?? gpus.length, 'nvidia', 'nvidia-smi')
    gpu.name = nvidiaValue(get('name'))
    gpu.uuid = nvidiaValue(get('uuid'))
    gpu.busId = nvidiaValue(get('pci.bus_id'))
    gpu.vramTotalBytes = mib('memory.total')
    gpu.vramUsedBytes = mib('memory.used')
    gpu.vramFreeBytes = mib('memory.free')
    gpu.driverVersion = nvidiaValue(get('driver_version'))
    gpu.computeCapability = nvidiaValue(get('compute_cap'))
    gpu.memoryClockMhz = nvidiaNumber(get('clocks.max.memory'))
    gpu.memoryBusWidthBits = nvidiaNumber(get('memory.bus_width'))
    gpu.theoreticalBandwidthGBps = theoreticalBandwidthGBps(gpu.memoryClockMhz, gpu.memoryBusWidthBits)
    if (gpu.name === null && gpu.vramTotalBytes === null) continue
    gpus.push(gpu)
  }
  return gpus
}

/** The field nvidia-smi names in `Field "memory.bus_width" is not a valid field to query.` */
export function nvidiaInvalidField(output: string): string | undefined {
  return /Field "([^"]+)" is not a valid field to query/i.exec(output)?.[1]
}

function entries(value: unknown): Array<[string, unknown]> {
  return value && typeof value === 'object' && !Array.isArray(value) ? Object.entries(value) : []
}

/** A field of a rocm-smi card object by case-insensitive key (its spelling changed across releases). */
function field(card: Record<string, unknown>, ...names: string[]): string | null {
  for (const [key, value] of Object.entries(card)) {
    if (!names.some((name) => key.toLowerCase() === name.toLowerCase())) continue
    const text = typeof value === 'string' || typeof value === 'number' ? String(value).trim() : ''
    if (text && text !== 'N/A') return text
  }
  return null
}

function bytes(text: string | null): number | null {
  if (text === null || !/^\d+$/.test(text)) return null
  return Number(text)
}

/**
 * `rocm-smi --showproductname --showmeminfo vram --showdriverversion --showbus --showuniqueid --json`:
 * `{ "card0": { "Card series": ..., "VRAM Total Memory (B)": "...", ... }, "system": { "Driver version": ... } }`.
 */
export function parseRocmSmiJson(text: string): GpuInfo[] {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    return []
  }
  const root = entries(parsed)
  let driver: string | null = null
  for (const [key, value] of root) {
    if (key.toLowerCase() === 'system') driver = field(value as Record<string, unknown>, 'Driver version')
  }
  const gpus: GpuInfo[] = []
  for (const [key, value] of root) {
    const match = /^card(\d+)$/i.exec(key)
    if (!match || entries(value).length === 0) continue
    const card = value as Record<string, unknown>
    const gpu = emptyGpu(Number(match[1]), 'amd', 'rocm-smi')
    const series = field(card, 'Card series', 'Card Series', 'Device Name')
    const model = field(card, 'Card model', 'Card Model')
    gpu.name = series ?? model
    gpu.vramTotalBytes = bytes(field(card, 'VRAM Total Memory (B)'))
    gpu.vramUsedBytes = bytes(field(card, 'VRAM Total Used Memory (B)'))
    gpu.vramFreeBytes =
      gpu.vramTotalBytes !== null && gpu.vramUsedBytes !== null
        ? gpu.vramTotalBytes - gpu.vramUsedBytes
        : null
    gpu.computeCapability = field(card, 'GFX Version')
    gpu.busId = field(card, 'PCI Bus')
    gpu.uuid = field(card, 'Unique ID')
    gpu.driverVersion = driver ?? field(card, 'Driver version')
    if (gpu.name === null && gpu.vramTotalBytes === null) continue
    gpus.push(gpu)
  }
  return gpus.sort((a, b) => a.index - b.index)
}

/** `1 GB`, `16 GB`, `1536 MB` as system_profiler writes sizes. */
function profilerBytes(text: unknown): number | null {
  if (typeof text !== 'string') return null
  const match = /^([\d.]+)\s*(KB|MB|GB|TB)$/i.exec(text.trim())
  if (!match) return null
  const unit = { KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 }[
    (match[2] ?? '').toUpperCase() as 'KB' | 'MB' | 'GB' | 'TB'
  ]
  return Math.round(Number(match[1]) * unit)
}

function profilerVendor(text: string): GpuVendor {
  const lower = text.toLowerCase()
  if (lower.includes('apple')) return 'apple'
  if (lower.includes('nvidia')) return 'nvidia'
  if (lower.includes('amd') || lower.includes('ati')) return 'amd'
  if (lower.includes('intel')) return 'intel'
  return 'other'
}

export interface AppleProfile {
  gpus: GpuInfo[]
  /** `chip_type` (Apple Silicon) or `cpu_type` (Intel Macs). */
  chip: string | null
  memoryBytes: number | null
}

/** `system_profiler SPHardwareDataType SPDisplaysDataType -json`. */
export function parseSystemProfiler(text: string): AppleProfile {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    return { gpus: [], chip: null, memoryBytes: null }
  }
  const root = Object.fromEntries(entries(parsed))
  const hardware = Array.isArray(root['SPHardwareDataType'])
    ? (root['SPHardwareDataType'][0] as Record<string, unknown> | undefined)
    : undefined
  const chipRaw = hardware?.['chip_type'] ?? hardware?.['cpu_type']
  const chip = typeof chipRaw === 'string' ? chipRaw : null
  const memoryBytes = profilerBytes(hardware?.['physical_memory'])
  const displays = Array.isArray(root['SPDisplaysDataType']) ? root['SPDisplaysDataType'] : []
  const gpus: GpuInfo[] = []
  for (const item of displays) {
    const display = Object.fromEntries(entries(item))
    const model = display['sppci_model'] ?? display['_name']
    if (typeof model !== 'string') continue
    const vendorText = typeof display['spdisplays_vendor'] === 'string' ? display['spdisplays_vendor'] : model
    const vendor = profilerVendor(`${vendorText} ${model}`)
    const gpu = emptyGpu(gpus.length, vendor, 'system_profiler')
    gpu.name = model
    const cores = Number(display['sppci_cores'])
    gpu.gpuCores = Number.isInteger(cores) && cores > 0 ? cores : null
    const builtin = display['sppci_bus'] === 'spdisplays_builtin'
    gpu.unifiedMemory = vendor === 'apple' && builtin
    if (!gpu.unifiedMemory) {
      gpu.vramTotalBytes = profilerBytes(display['spdisplays_vram'] ?? display['spdisplays_vram_shared'])
    }
    gpus.push(gpu)
  }
  return { gpus, chip, memoryBytes }
}

/** The files of one /sys/class/drm/cardN/device, already read. */
export interface DrmCardFiles {
  card: string
  vendor: string | undefined
  device: string | undefined
  vramTotal: string | undefined
  vramUsed: string | undefined
  productName: string | undefined
  uevent: string | undefined
}

const PCI_VENDORS: Record<string, GpuVendor> = { '0x10de': 'nvidia', '0x1002': 'amd', '0x8086': 'intel' }

/**
 * A GPU from sysfs: vendor and, for amdgpu, VRAM. Vendors that are not compute GPUs (server BMC
 * and virtual display adapters) are left out.
 */
export function parseDrmCard(files: DrmCardFiles): GpuInfo | undefined {
  const vendor = PCI_VENDORS[files.vendor?.trim().toLowerCase() ?? '']
  if (!vendor) return undefined
  const index = Number(/^card(\d+)$/.exec(files.card)?.[1] ?? 0)
  const gpu = emptyGpu(index, vendor, 'sysfs')
  gpu.name = files.productName?.trim() || null
  gpu.vramTotalBytes = bytes(files.vramTotal?.trim() ?? null)
  gpu.vramUsedBytes = bytes(files.vramUsed?.trim() ?? null)
  gpu.vramFreeBytes =
    gpu.vramTotalBytes !== null && gpu.vramUsedBytes !== null ? gpu.vramTotalBytes - gpu.vramUsedBytes : null
  gpu.busId = /PCI_SLOT_NAME=(\S+)/.exec(files.uevent ?? '')?.[1] ?? null
  return gpu
}
