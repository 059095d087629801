import { VeloError } from '../errors.js'
import type { BackendKind, Goal, Parameters } from '../profiles/schema.js'
import type { MemoryParams, ModelShape } from './memory.js'

/**
 * One axis of the search. Each option is a partial assignment of parameters (K and V cache types
 * move together); `{}` is the backend's default for the axis, so the search starts from the
 * baseline itself and never measures "the default, spelled out" as a separate candidate.
 */
export interface Dimension {
  name: string
  options: Parameters[]
}

export interface SearchSpace {
  backend: BackendKind
  goal: Goal
  dimensions: Dimension[]
  /** Pinned in every candidate, baseline included: the context each request gets, slots for single-stream goals. */
  fixed: Parameters
  /** Each request's context; throughput candidates get minCtx x parallel in total. */
  minCtx: number
}

export interface SpaceInput {
  backend: BackendKind
  goal: Goal
  /** Logical CPUs. */
  cores: number
  minCtx: number
  concurrency: number
  /** Layers of the model; the GPU axis offers 0..layers+1 when `gpu` is true. */
  layers: number
  gpu: boolean
}

/** Slots llama-server runs when `-np` is not given (`-np -1`, auto). */
export const LLAMA_SERVER_DEFAULT_SLOTS = 4

function unique(values: number[]): number[] {
  return [...new Set(values)].sort((a, b) => a - b)
}

function threadOptions(cores: number): number[] {
  const quarters = [0.25, 0.5, 0.75, 1].map((f) => Math.max(1, Math.round(cores * f)))
  return unique(cores <= 4 ? [1, ...quarters] : quarters)
}

function gpuOptions(layers: number): number[] {
  return unique([
    0,
    Math.round(layers / 4),
    Math.round(layers / 2),
    Math.round((3 * layers) / 4),
    layers,
    layers + 1,
  ])
}

function parallelOptions(concurrency: number): number[] {
  const values = [1, concurrency]
  for (let p = 2; p <= 2 * concurrency; p *= 2) values.push(p)
  return unique(values)
}

const KV_CHOICES = ['q8_0', 'q4_0'] as const

/** The parameters the goal's measurement responds to, per backend, with the defaults as `{}`. */
export function buildSpace(input: SpaceInput): SearchSpace {
  const dimensions: Dimension[] = []
  const add = (name: string, options: Parameters[]): void => {
    if (options.length > 1) dimensions.push({ name, options })
  }
  if (input.gpu) add('gpuLayers', [{}, ...gpuOptions(input.layers).map((gpuLayers) => ({ gpuLayers }))])
  // The backends default to every logical CPU; the default is `{}` and not offered twice.
  add('threads', [
    {},
    ...threadOptions(input.cores)
      .filter((threads) => threads !== input.cores)
      .map((threads) => ({ threads })),
  ])

  if (input.backend === 'ollama') {
    // Per request Ollama takes num_ctx, num_gpu, num_thread and num_batch; the rest is server-wide.
    add('batch', [{}, ...[128, 256, 1024].map((batch) => ({ batch }))])
    return {
      backend: input.backend,
      goal: input.goal,
      dimensions,
      fixed: { ctx: input.minCtx },
      minCtx: input.minCtx,
    }
  }

  if (input.goal === 'throughput') {
    add('parallel', [
      {},
      ...parallelOptions(input.concurrency)
        .filter((parallel) => parallel !== LLAMA_SERVER_DEFAULT_SLOTS)
        .map((parallel) => ({ parallel })),
    ])
  }
  // `-fa auto` turns flash attention on wherever the backend supports it, so `on` is the default.
  add('flashAttention', [{}, { flashAttention: 'off' }])
  add('kvCache', [{}, ...KV_CHOICES.map((type) => ({ cacheTypeK: type, cacheTypeV: type }))])
  if (input.goal !== 'speed') {
    // Batch sizes shape prompt processing; single-stream generation decodes one token at a time.
    add('ubatch', [{}, ...[128, 256, 1024].map((ubatch) => ({ ubatch }))])
    add('batch', [{}, ...[512, 1024].map((batch) => ({ batch }))])
  }
  const fixed: Parameters = input.goal === 'throughput' ? {} : { ctx: input.minCtx, parallel: 1 }
  return { backend: input.backend, goal: input.goal, dimensions, fixed, minCtx: input.minCtx }
}

/** Every axis name any backend or goal can have, in the order the search scans them. */
export const AXIS_NAMES = [
  'gpuLayers',
  'threads',
  'parallel',
  'flashAttention',
  'kvCache',
  'ubatch',
  'batch',
] as const

/**
 * The space with only the named axes searched; the others stay at the backend's default. A name
 * that is no axis at all is an error; a known axis this backend or goal does not search (or one
 * with a single option on this machine) simply adds nothing.
 */
export function restrictSpace(space: SearchSpace, axes: readonly string[]): SearchSpace {
  const wanted = [...new Set(axes.map((axis) => axis.trim()).filter((axis) => axis !== ''))]
  const unknown = wanted.filter((axis) => !(AXIS_NAMES as readonly string[]).includes(axis))
  if (unknown.length > 0 || wanted.length === 0) {
    throw new VeloError(
      'VELO_BAD_REQUEST',
      `axes: expected one or more of ${AXIS_NAMES.join(', ')}, got ${wanted.length === 0 ? 'none' : unknown.join(', ')}`,
    )
  }
  return { ...space, dimensions: space.dimensions.filter((dimension) => wanted.includes(dimension.name)) }
}

/** A candidate with the pinned parameters and the ones derived from others (throughput's total context). */
export function complete(space: SearchSpace, candidate: Parameters): Parameters {
  const merged: Parameters = { ...candidate, ...space.fixed }
  if (space.backend === 'llama-server' && space.goal === 'throughput') {
    merged.ctx = space.minCtx * (merged.parallel ?? LLAMA_SERVER_DEFAULT_SLOTS)
  }
  return merged
}

const DEFAULT_BATCH = 2048
const DEFAULT_UBATCH = 512

/** Combinations the engine refuses or silently rewrites; the search never measures them. */
export function invalidReason(
  candidate: Parameters,
  backend: BackendKind = 'llama-server',
): string | undefined {
  // Ollama's num_batch sets the batch and the micro-batch together, and a request cannot set the
  // cache type or flash attention: nothing a request carries can clash.
  if (backend === 'ollama') return undefined
  const quantizedV =
    candidate.cacheTypeV !== undefined && !['f16', 'f32', 'bf16'].includes(candidate.cacheTypeV)
  if (quantizedV && candidate.flashAttention === 'off') return 'a quantized V cache needs flash attention'
  const ubatch = candidate.ubatch ?? DEFAULT_UBATCH
  const batch = candidate.batch ?? DEFAULT_BATCH
  if (ubatch > batch) return `ubatch ${ubatch} above batch ${batch} (llama.cpp would cut it to the batch)`
  return undefined
}

/** A stable text key for a candidate: same parameters, same key, whatever the order. */
export function candidateKey(candidate: Parameters): string {
  const entries = Object.entries(candidate)
    .filter(([, value]) => value !== undefined)
    .sort(([a], [b]) => a.localeCompare(b))
  return JSON.stringify(Object.fromEntries(entries))
}

/** What the parameters mean for memory, with the engine's defaults filled in. */
export function memoryParams(
  shape: ModelShape,
  candidate: Parameters,
  backend: BackendKind,
  gpu: boolean,
): MemoryParams {
  if (backend === 'ollama') {
    // Ollama runs one request per model by default and keeps flash attention off unless told.
    const batch = candidate.batch ?? 512
    return {
      gpuLayers: candidate.gpuLayers ?? (gpu ? shape.layers + 1 : 0),
      ctx: candidate.ctx ?? 4096,
      parallel: 1,
      kvUnified: true,
      cacheTypeK: 'f16',
      cacheTypeV: 'f16',
      flashAttention: false,
      batch,
      ubatch: batch,
    }
  }
  return {
    gpuLayers: candidate.gpuLayers ?? (gpu ? shape.layers + 1 : 0),
    ctx: candidate.ctx ?? 0,
    parallel: candidate.parallel ?? LLAMA_SERVER_DEFAULT_SLOTS,
    kvUnified: candidate.parallel === undefined,
    cacheTypeK: candidate.cacheTypeK ?? 'f16',
    cacheTypeV: candidate.cacheTypeV ?? 'f16',
    flashAttention: candidate.flashAttention !== 'off',
    batch: candidate.batch ?? DEFAULT_BATCH,
    ubatch: candidate.ubatch ?? DEFAULT_UBATCH,
  }
}

/** Every combination of the axes (for the exhaustive-grid comparison and tests). */
export function enumerateGrid(space: SearchSpace): Parameters[] {
  let grid: Parameters[] = [{}]
  for (const dimension of space.dimensions) {
    grid = grid.flatMap((partial) => dimension.options.map((option) => ({ ...partial, ...option })))
  }
  return grid.filter((candidate) => invalidReason(candidate, space.backend) === undefined)
}

/** A short human label: `t=2 fa=off kv=q8_0 ub=256`, or `defaults`. */
export function describeCandidate(candidate: Parameters): string {
  const parts: string[] = []
  if (candidate.gpuLayers !== undefined) parts.push(`ngl=${candidate.gpuLayers}`)
  if (candidate.threads !== undefined) parts.push(`t=${candidate.threads}`)
  if (candidate.parallel !== undefined) parts.push(`np=${candidate.parallel}`)
  if (candidate.flashAttention !== undefined) parts.push(`fa=${candidate.flashAttention}`)
  if (candidate.cacheTypeK !== undefined || candidate.cacheTypeV !== undefined) {
    const k = candidate.cacheTypeK ?? 'f16'
    const v = candidate.cacheTypeV ?? 'f16'
    parts.push(k === v ? `kv=${k}` : `kv=${k}/${v}`)
  }
  if (candidate.batch !== undefined) parts.push(`b=${candidate.batch}`)
  if (candidate.ubatch !== undefined) parts.push(`ub=${candidate.ubatch}`)
  if (candidate.ctx !== undefined) parts.push(`c=${candidate.ctx}`)
  return parts.length > 0 ? parts.join(' ') : 'defaults'
}
