import { hostname, release } from 'node:os'
import si from 'systeminformation'
import { type DiscoveredModel, discoverModels } from '../models/discover.js'
import { detectBackends } from './backends.js'
import { bandwidthPlan, measureMemoryBandwidth } from './bandwidth.js'
import { detectCpu } from './cpu.js'
import { cpuBudget, estimateFit, type FitBudget, gpuBudget } from './fit.js'
import { detectGpus } from './gpu.js'
import { checkModelsDirs, checkUrl, existingDirs } from './inputs.js'
import { detectMemory, readTextSync } from './memory.js'
import { describeModel, fitModelOf } from './models.js'
import {
  type BandwidthInfo,
  MACHINE_REPORT_SCHEMA_VERSION,
  type MachineReport,
  type ModelReport,
} from './types.js'

export interface DetectOptions {
  /** Run the main-memory bandwidth probe (at most 2 s). Default true. */
  measureBandwidth?: boolean
  /** Extra folders of GGUF models (`--models-dir`); each must exist. */
  modelsDirs?: string[]
  /** Folders from the config (`managed.modelsDirs`): searched, and a missing one is a note, not an error. */
  configuredModelsDirs?: string[]
  /** Also look for models in the usual places (LM Studio, llama.cpp, HF, Ollama, velo). Default true. */
  usualPlaces?: boolean
  env?: NodeJS.ProcessEnv
  /** Ollama to ask; default from `OLLAMA_HOST`. */
  ollamaUrl?: string | undefined
  /** Ports to probe for running llama-servers, added to the usual ones. */
  ports?: number[]
  /** Where to look for a running velo; default http://127.0.0.1:8000. */
  veloUrl?: string | undefined
  /** `engine.llamaServer` from the config. */
  configuredServer?: string | undefined
  onProgress?: (message: string) => void
}

/** `Debian GNU/Linux 12` from /etc/os-release on Linux (no subprocess); systeminformation elsewhere. */
async function distroName(): Promise<string | null> {
  if (process.platform === 'linux') {
    const text = readTextSync('/etc/os-release') ?? readTextSync('/usr/lib/os-release') ?? ''
    const field = (key: string): string | undefined =>
      new RegExp(`^${key}="?([^"\\n]*)"?$`, 'm').exec(text)?.[1] || undefined
    return [field('NAME'), field('VERSION_ID')].filter(Boolean).join(' ') || null
  }
  const info = await si.osInfo().catch(() => undefined)
  return info ? [info.distro, info.release].filter(Boolean).join(' ') || null : null
}

function modelReport(model: DiscoveredModel, gpu: FitBudget | null, cpu: FitBudget): ModelReport {
  const fitModel = fitModelOf(model)
  return {
    ...describeModel(model),
    fit: { gpu: gpu ? estimateFit(fitModel, gpu) : null, cpu: estimateFit(fitModel, cpu) },
  }
}

/** Everything `velo detect` reports. Tools that are missing give nulls and a note, never an error. */
export async function detectMachine(options: DetectOptions = {}): Promise<MachineReport> {
  const started = performance.now()
  const env = options.env ?? process.env
  const progress = options.onProgress ?? (() => {})
  const ollamaUrl = checkUrl('--ollama-url', options.ollamaUrl)
  const veloUrl = checkUrl('--velo-url', options.veloUrl)
  const notes: string[] = []
  const modelsDirs = [
    ...(await checkModelsDirs(options.modelsDirs ?? [])),
    ...(await existingDirs(options.configuredModelsDirs ?? [], notes, 'managed.modelsDirs entry')),
  ]
  const cpuNotes: string[] = []
  const memoryNotes: string[] = []
  const gpuNotes: string[] = []
  const modelNotes: string[] = []
  progress('probing CPU, memory, GPUs, backends and models')
  const [cpu, memory, gpus, backends, models, osInfo] = await Promise.all([
    detectCpu(cpuNotes),
    detectMemory(memoryNotes),
    detectGpus(gpuNotes),
    detectBackends({
      env,
      ollamaUrl,
      extraPorts: options.ports ?? [],
      veloUrl,
      configuredServer: options.configuredServer,
    }),
    discoverModels({
      modelsDirs,
      env,
      usualPlaces: options.usualPlaces ?? true,
      onProblem: (problem) =>
        modelNotes.push(
          `models: ${problem.error.startsWith(problem.path) ? problem.error : `${problem.path}: ${problem.error}`}`,
        ),
    }),
    distroName(),
  ])
  notes.push(...cpuNotes, ...memoryNotes, ...gpuNotes)

  const bandwidth: BandwidthInfo = {
    mainMemory: null,
    gpus: gpus.map((gpu) => ({ index: gpu.index, theoreticalGBps: gpu.theoreticalBandwidthGBps })),
  }
  if (options.measureBandwidth ?? true) {
    progress('measuring main-memory bandwidth (at most 2 s)')
    const plan = bandwidthPlan(cpu.physicalCores ?? cpu.logicalCores, memory.usableBytes)
    const result = await measureMemoryBandwidth({ ...plan, deadlineMs: 2000 })
    bandwidth.mainMemory = result.measured
    if (result.error) notes.push(`bandwidth: the probe failed: ${result.error}`)
  } else {
    notes.push('bandwidth: not measured (--no-measure); CPU decode bounds are unknown')
  }

  const measured = bandwidth.mainMemory?.gbPerSecond ?? null
  const gpu = gpuBudget(gpus, memory, measured)
  const cpuFit = cpuBudget(memory, measured)
  notes.push(...modelNotes)
  return {
    schemaVersion: MACHINE_REPORT_SCHEMA_VERSION,
    generatedAt: new Date().toISOString(),
    durationMs: Math.round(performance.now() - started),
    os: {
      platform: process.platform,
      release: release(),
      distro: osInfo,
      hostname: hostname(),
    },
    cpu,
    memory,
    gpus,
    bandwidth,
    backends,
    models: models.map((model) => modelReport(model, gpu, cpuFit)),
    notes,
  }
}
