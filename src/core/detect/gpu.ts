import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { execa } from 'execa'
import si, { type Systeminformation } from 'systeminformation'
import which from 'which'
import { errorMessage } from '../errors.js'
import {
  type DrmCardFiles,
  NVIDIA_QUERY_FIELDS,
  nvidiaInvalidField,
  parseDrmCard,
  parseNvidiaSmiCsv,
  parseRocmSmiJson,
  parseSystemProfiler,
} from './gpu-parse.js'
import { type ReadText, readTextSync } from './memory.js'
import type { GpuInfo, GpuVendor } from './types.js'

export interface ToolResult {
  /** False when the tool is not installed. */
  found: boolean
  exitCode: number | null
  stdout: string
  stderr: string
}

/** Runs a probing tool with a timeout; never throws. */
export type RunTool = (command: string, args: string[]) => Promise<ToolResult>

export function runTool(env: NodeJS.ProcessEnv = process.env, timeoutMs = 5000): RunTool {
  return async (command, args) => {
    const path = await which(command, { nothrow: true, path: env['PATH'] ?? '' })
    if (!path) return { found: false, exitCode: null, stdout: '', stderr: '' }
    const result = await execa(path, args, { reject: false, timeout: timeoutMs, env, stdin: 'ignore' })
    const timedOut = result.timedOut ? `timed out after ${timeoutMs} ms` : ''
    return {
      found: true,
      exitCode: result.exitCode ?? null,
      stdout: String(result.stdout ?? ''),
      stderr: [String(result.stderr ?? ''), timedOut].filter(Boolean).join('\n'),
    }
  }
}

function firstLine(text: string): string {
  return text.trim().split('\n')[0]?.slice(0, 160) ?? ''
}

/** nvidia-smi with every field velo wants, dropping the ones an older driver rejects. */
export async function detectNvidia(run: RunTool, notes: string[]): Promise<GpuInfo[] | undefined> {
  const fields: string[] = [...NVIDIA_QUERY_FIELDS]
  for (let attempt = 0; attempt < NVIDIA_QUERY_FIELDS.length; attempt++) {
    const result = await run('nvidia-smi', [`--query-gpu=${fields.join(',')}`, '--format=csv,nounits'])
    if (!result.found) return undefined
    const output = `${result.stdout}\n${result.stderr}`
    const invalid = nvidiaInvalidField(output)
    if (result.exitCode !== 0 && invalid && fields.includes(invalid) && invalid !== 'name') {
      fields.splice(fields.indexOf(invalid), 1)
      continue
    }
    if (result.exitCode !== 0) {
      notes.push(`gpu: nvidia-smi failed (exit ${result.exitCode}): ${firstLine(output)}`)
      return []
    }
    const gpus = parseNvidiaSmiCsv(result.stdout)
    if (gpus.length === 0 && result.stdout.trim() !== '') {
      notes.push(`gpu: could not read nvidia-smi output: ${firstLine(result.stdout)}`)
    }
    if (gpus.some((gpu) => gpu.memoryBusWidthBits === null)) {
      notes.push('gpu: nvidia-smi does not report the memory bus width here, so GPU bandwidth is unknown')
    }
    return gpus
  }
  return []
}

export async function detectRocm(run: RunTool, notes: string[]): Promise<GpuInfo[] | undefined> {
  const result = await run('rocm-smi', [
    '--showproductname',
    '--showmeminfo',
    'vram',
    '--showdriverversion',
    '--showbus',
    '--showuniqueid',
    '--json',
  ])
  if (!result.found) return undefined
  const gpus = parseRocmSmiJson(result.stdout)
  if (gpus.length === 0) {
    notes.push(
      `gpu: rocm-smi gave no readable GPU list (exit ${result.exitCode}): ${firstLine(result.stdout || result.stderr)}`,
    )
  }
  return gpus
}

/** Every /sys/class/drm/cardN that is a GPU (not a connector like card0-HDMI-A-1). */
export function readDrmCards(read: ReadText = readTextSync, root = '/sys/class/drm'): DrmCardFiles[] {
  let names: string[]
  try {
    names = readdirSync(root).filter((name) => /^card\d+$/.test(name))
  } catch {
    return []
  }
  return names.map((card) => {
    const device = join(root, card, 'device')
    return {
      card,
      vendor: read(join(device, 'vendor')),
      device: read(join(device, 'device')),
      vramTotal: read(join(device, 'mem_info_vram_total')),
      vramUsed: read(join(device, 'mem_info_vram_used')),
      productName: read(join(device, 'product_name')),
      uevent: read(join(device, 'uevent')),
    }
  })
}

/** systeminformation's graphics probe; a parameter so tests can hand in a canned result. */
export type ReadGraphics = () => Promise<Systeminformation.GraphicsData>

const readGraphics: ReadGraphics = () => si.graphics()

async function controllerNames(
  graphicsOf: ReadGraphics,
): Promise<Array<{ vendor: GpuVendor; name: string; busId: string | null }>> {
  const graphics = await graphicsOf().catch(() => undefined)
  return (graphics?.controllers ?? []).map((controller) => ({
    vendor: vendorOf(controller.vendor),
    name: controller.model,
    busId: controller.busAddress || null,
  }))
}

function vendorOf(text: string): GpuVendor {
  const lower = text.toLowerCase()
  if (lower.includes('nvidia')) return 'nvidia'
  // Whole words: "Intel Corporation" has "ati" in it.
  if (lower.includes('advanced micro') || /\b(amd|ati)\b/.test(lower)) return 'amd'
  if (lower.includes('apple')) return 'apple'
  if (lower.includes('intel')) return 'intel'
  return 'other'
}

async function detectLinux(
  run: RunTool,
  notes: string[],
  read: ReadText,
  graphicsOf: ReadGraphics,
): Promise<GpuInfo[]> {
  const [nvidia, rocm] = await Promise.all([detectNvidia(run, notes), detectRocm(run, notes)])
  const gpus: GpuInfo[] = [...(nvidia ?? []), ...(rocm ?? [])]
  const sysfs = readDrmCards(read)
    .map(parseDrmCard)
    .filter((gpu): gpu is GpuInfo => gpu !== undefined)
  const covered = new Set<GpuVendor>()
  if (nvidia !== undefined) covered.add('nvidia')
  if (rocm !== undefined && rocm.length > 0) covered.add('amd')
  const rest = sysfs.filter((gpu) => !covered.has(gpu.vendor))
  if (rest.length > 0) {
    const names = rest.some((gpu) => gpu.name === null) ? await controllerNames(graphicsOf) : []
    for (const gpu of rest) {
      gpu.name ??=
        names.find((c) => c.vendor === gpu.vendor && (c.busId === null || c.busId === gpu.busId))?.name ??
        null
      gpu.index = gpus.length
      gpus.push(gpu)
    }
    if (rest.some((gpu) => gpu.vendor === 'nvidia')) {
      notes.push('gpu: an NVIDIA GPU is present but nvidia-smi is not on PATH: its VRAM is unknown')
    }
    if (rest.some((gpu) => gpu.vendor === 'amd' && gpu.vramTotalBytes !== null)) {
      notes.push('gpu: AMD VRAM read from sysfs (amdgpu) because rocm-smi is not on PATH')
    }
  }
  return gpus
}

async function detectMac(run: RunTool, notes: string[], graphicsOf: ReadGraphics): Promise<GpuInfo[]> {
  const result = await run('system_profiler', ['SPHardwareDataType', 'SPDisplaysDataType', '-json'])
  if (!result.found || result.exitCode !== 0) {
    notes.push('gpu: system_profiler failed; GPU list comes from systeminformation')
    return fromSystemInformation(graphicsOf, notes)
  }
  const profile = parseSystemProfiler(result.stdout)
  if (profile.gpus.some((gpu) => gpu.unifiedMemory)) {
    notes.push('gpu: Apple Silicon shares RAM with the GPU (unified memory); the GPU fit uses RAM')
  }
  return profile.gpus
}

async function fromSystemInformation(graphicsOf: ReadGraphics, notes: string[]): Promise<GpuInfo[]> {
  let graphics: Systeminformation.GraphicsData
  try {
    graphics = await graphicsOf()
  } catch (error) {
    notes.push(`gpu: systeminformation could not list the graphics controllers: ${errorMessage(error)}`)
    return []
  }
  return gpusFromGraphics(graphics.controllers)
}

/**
 * GPUs as systeminformation reports them (Windows, other platforms, a Mac without system_profiler).
 * Its memory figures are MiB. A `vram` of 0 means it could not tell; a used or free of 0 is real.
 */
export function gpusFromGraphics(controllers: Systeminformation.GraphicsControllerData[]): GpuInfo[] {
  return controllers.map((controller, index) => {
    const vendor = vendorOf(controller.vendor)
    // Apple Silicon's GPU shares RAM (systeminformation calls its VRAM dynamic): no VRAM of its own,
    // the same answer system_profiler's path gives.
    const unifiedMemory = vendor === 'apple' && controller.vramDynamic
    const bytes = (mib: number | null | undefined): number | null =>
      unifiedMemory || mib === null || mib === undefined ? null : mib * 1024 ** 2
    return {
      index,
      vendor,
      name: controller.model || null,
      unifiedMemory,
      vramTotalBytes: controller.vram ? bytes(controller.vram) : null,
      vramUsedBytes: bytes(controller.memoryUsed),
      vramFreeBytes: bytes(controller.memoryFree),
      driverVersion: controller.driverVersion || null,
      computeCapability: null,
      memoryBusWidthBits: null,
      memoryClockMhz: null,
      theoreticalBandwidthGBps: null,
      gpuCores: controller.cores ?? null,
      busId: controller.busAddress || null,
      uuid: null,
      source: 'systeminformation',
    }
  })
}

/** The GPUs of this machine; an empty list when there are none (not an error). */
export async function detectGpus(
  notes: string[],
  options: { run?: RunTool; read?: ReadText; platform?: NodeJS.Platform; graphics?: ReadGraphics } = {},
): Promise<GpuInfo[]> {
  const run = options.run ?? runTool()
  const platform = options.platform ?? process.platform
  const graphicsOf = options.graphics ?? readGraphics
  try {
    if (platform === 'linux') return await detectLinux(run, notes, options.read ?? readTextSync, graphicsOf)
    if (platform === 'darwin') return await detectMac(run, notes, graphicsOf)
    const nvidia = await detectNvidia(run, notes)
    if (nvidia && nvidia.length > 0) return nvidia
    return await fromSystemInformation(graphicsOf, notes)
  } catch (error) {
    notes.push(`gpu: probing failed: ${errorMessage(error)}`)
    return []
  }
}
