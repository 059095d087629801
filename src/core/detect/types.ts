/**
 * The report `velo detect --json` prints. Documented in docs/detect.md; scripts rely on it, so fields
 * are only ever added. A value the machine did not tell us is `null`, never a guess; `notes` say why.
 */

export const MACHINE_REPORT_SCHEMA_VERSION = 1

/** ISA features llama.cpp's CPU backend picks kernels by. `null`: this platform cannot tell. */
export type CpuFeature =
  | 'avx'
  | 'avx2'
  | 'avx512'
  | 'avx512_vnni'
  | 'avx512_bf16'
  | 'avx_vnni'
  | 'amx'
  | 'f16c'
  | 'fma'
  | 'neon'
  | 'dotprod'
  | 'i8mm'
  | 'sve'

export interface CpuInfo {
  brand: string | null
  vendor: string | null
  /** Node's `process.arch`: `x64`, `arm64`, ... */
  architecture: string
  physicalCores: number | null
  logicalCores: number
  features: Record<CpuFeature, boolean | null>
}

export interface MemoryInfo {
  totalBytes: number
  /** What the kernel says can be allocated without swapping (MemAvailable on Linux). */
  availableBytes: number
  swapTotalBytes: number | null
  /** The container's memory limit (cgroup v1 or v2), when one applies. */
  cgroupLimitBytes: number | null
  cgroupUsageBytes: number | null
  /** The smaller of `availableBytes` and what the cgroup limit still allows: the budget for a model in RAM. */
  usableBytes: number
}

export type GpuVendor = 'nvidia' | 'amd' | 'apple' | 'intel' | 'other'
export type GpuSource = 'nvidia-smi' | 'rocm-smi' | 'sysfs' | 'system_profiler' | 'systeminformation'

export interface GpuInfo {
  index: number
  vendor: GpuVendor
  name: string | null
  /** Unified memory (Apple Silicon): the GPU shares RAM, so the VRAM fields are null. */
  unifiedMemory: boolean
  vramTotalBytes: number | null
  vramUsedBytes: number | null
  vramFreeBytes: number | null
  driverVersion: string | null
  /** NVIDIA compute capability (`8.9`) or AMD gfx target (`gfx1100`). */
  computeCapability: string | null
  memoryBusWidthBits: number | null
  /** The memory clock the driver reports as its maximum, in MHz. */
  memoryClockMhz: number | null
  /** Theoretical peak: 2 (double data rate) x clock x bus width / 8. Null without both numbers. */
  theoreticalBandwidthGBps: number | null
  gpuCores: number | null
  busId: string | null
  uuid: string | null
  source: GpuSource
}

export interface MeasuredBandwidth {
  /** Copy bandwidth in GB/s (1e9 bytes), counting bytes read plus bytes written, like STREAM's Copy. */
  gbPerSecond: number
  threads: number
  bufferBytes: number
  durationMs: number
}

export interface BandwidthInfo {
  /** Main-memory bandwidth measured by a short copy loop; null when skipped (`--no-measure`) or failed. */
  mainMemory: MeasuredBandwidth | null
  /** Per GPU, the theoretical bandwidth from bus width and memory clock (null when not reported). */
  gpus: Array<{ index: number; theoreticalGBps: number | null }>
}

export interface OllamaModelInfo {
  name: string
  sizeBytes: number
  digest: string | null
  family: string | null
  parameterSize: string | null
  quantization: string | null
  modifiedAt: string | null
}

export interface OllamaLoadedModel {
  name: string
  sizeBytes: number
  vramBytes: number
  contextLength: number | null
  expiresAt: string | null
}

export interface OllamaBackend {
  url: string
  reachable: boolean
  version: string | null
  models: OllamaModelInfo[]
  loaded: OllamaLoadedModel[]
  error: string | null
}

export interface LlamaServerBinary {
  path: string
  source: 'path' | 'velo' | 'config'
  version: string | null
  commit: string | null
}

export interface LlamaServerInstance {
  url: string
  port: number
  /** `/health`: `ok`, or `loading` while the model loads (503). */
  status: 'ok' | 'loading' | 'error'
  modelPath: string | null
  modelAlias: string | null
  /** Each slot's context (llama-server divides `--ctx-size` among `--parallel` slots). */
  contextPerSlot: number | null
  slots: number | null
  buildInfo: string | null
}

export interface VeloInstance {
  url: string
  version: string | null
  uptimeSeconds: number | null
  models: string[]
  upstreams: string[]
  /** It asks for an admin key (VELO_API_KEY) that detect did not have: nothing else is known. */
  keyRequired: boolean
}

export interface BackendsInfo {
  ollama: OllamaBackend
  llamaServerBinaries: LlamaServerBinary[]
  llamaServers: LlamaServerInstance[]
  velo: VeloInstance | null
}

/** Where the estimate puts the model: VRAM of all GPUs, unified memory (Apple), or RAM. */
export type FitTarget = 'gpu' | 'unified' | 'cpu'

/** Every number here is an estimate from the GGUF header and the hardware report, not a measurement. */
export interface ModelFit {
  target: FitTarget
  /** Memory the estimate may use: free VRAM, or usable RAM. */
  budgetBytes: number
  weightsBytes: number
  /** Bytes of f16 K and V cache per token of context: layers x kv_heads x head_dim x 2 x 2. */
  kvBytesPerToken: number | null
  /** Held back for the runtime's compute buffers and context. */
  reserveBytes: number
  /** The context the `fits` answer is for: min(trained context, 4096). */
  context: number | null
  /** Weights + KV at `context` + reserve fit in the budget. */
  fits: boolean
  /** Largest context whose KV cache fits beside the weights, capped at the trained context. */
  maxContext: number | null
  /** Upper bound on decode tokens/s: bandwidth / bytes read per token (every weight once). */
  decodeTokensPerSecondMax: number | null
  bandwidthGBps: number | null
  bandwidthSource: 'measured' | 'theoretical' | null
}

/** A discovered GGUF model as `velo models list --json` prints it. */
export interface ModelEntry {
  id: string
  path: string
  source: string
  ollamaName: string | null
  fileBytes: number
  architecture: string | null
  name: string | null
  parameterCount: number
  quantization: string | null
  contextLength: number | null
  layers: number | null
  embeddingLength: number | null
  headCount: number | null
  headCountKv: number | null
  headDim: number | null
}

export interface ModelReport extends ModelEntry {
  fit: { gpu: ModelFit | null; cpu: ModelFit }
}

export interface MachineReport {
  schemaVersion: typeof MACHINE_REPORT_SCHEMA_VERSION
  generatedAt: string
  durationMs: number
  os: { platform: string; release: string; distro: string | null; hostname: string }
  cpu: CpuInfo
  memory: MemoryInfo
  gpus: GpuInfo[]
  bandwidth: BandwidthInfo
  backends: BackendsInfo
  models: ModelReport[]
  /** Why a field is null, a tool that was missing, a file that could not be read. */
  notes: string[]
}
