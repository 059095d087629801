/** Parsing of bench's text options (`1,2,4`, `--set key=v1,v2`, `--slo ttft=500ms`) with errors that name the flag. */
import { parseDuration } from '../config/units.js'
import { VeloError } from '../errors.js'
import type { ParamValue, Slo, SweepParam } from './types.js'

function bad(message: string, suggestion?: string): VeloError {
  return new VeloError('VELO_BAD_REQUEST', message, suggestion === undefined ? {} : { suggestion })
}

/** `1,2,4` -> [1, 2, 4]: positive integers, duplicates dropped, order kept. */
export function parseConcurrency(input: string): number[] {
  const values = input
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean)
  const levels: number[] = []
  for (const value of values) {
    const level = Number(value)
    if (!Number.isInteger(level) || level < 1) {
      throw bad(`--concurrency: expected positive integers like 1,2,4, got "${input}"`)
    }
    if (!levels.includes(level)) levels.push(level)
  }
  if (levels.length === 0) throw bad(`--concurrency: expected positive integers like 1,2,4, got "${input}"`)
  return levels
}

/** `1024` -> 1024, `true` -> true, `q8_0` -> 'q8_0'. */
export function parseParamValue(text: string): ParamValue {
  if (text === 'true') return true
  if (text === 'false') return false
  if (/^-?\d+(\.\d+)?$/.test(text)) return Number(text)
  return text
}

/**
 * llama-server arguments a sweep can vary, by every name a user may give (long name without dashes,
 * short name) -> the long flag. A key not listed here is a request option.
 */
const SERVER_ARGS: Record<string, string> = {
  threads: '--threads',
  t: '--threads',
  'threads-batch': '--threads-batch',
  tb: '--threads-batch',
  'ctx-size': '--ctx-size',
  c: '--ctx-size',
  'batch-size': '--batch-size',
  b: '--batch-size',
  'ubatch-size': '--ubatch-size',
  ub: '--ubatch-size',
  parallel: '--parallel',
  np: '--parallel',
  'flash-attn': '--flash-attn',
  fa: '--flash-attn',
  'cache-type-k': '--cache-type-k',
  ctk: '--cache-type-k',
  'cache-type-v': '--cache-type-v',
  ctv: '--cache-type-v',
  'n-gpu-layers': '--n-gpu-layers',
  ngl: '--n-gpu-layers',
  'gpu-layers': '--n-gpu-layers',
  'split-mode': '--split-mode',
  sm: '--split-mode',
  'main-gpu': '--main-gpu',
  mg: '--main-gpu',
  mlock: '--mlock',
  'no-mmap': '--no-mmap',
  'cont-batching': '--cont-batching',
  'cache-reuse': '--cache-reuse',
  'defrag-thold': '--defrag-thold',
  'kv-unified': '--kv-unified',
  'n-cpu-moe': '--n-cpu-moe',
  poll: '--poll',
}

/** The llama-server flag for a sweep key (`threads`, `t`, `server.threads`), or undefined. */
export function serverFlag(key: string): string | undefined {
  return SERVER_ARGS[key.replace(/^server\./, '')]
}

/**
 * `--set key=v1,v2` (repeatable). With `managed` (velo runs llama-server), llama-server argument
 * names vary its arguments; every other key is a request option. `server.` and `request.` prefixes
 * force the choice.
 */
export function parseSweep(inputs: readonly string[], managed: boolean): SweepParam[] {
  const params: SweepParam[] = []
  for (const input of inputs) {
    const match = /^([^=]+)=(.*)$/.exec(input.trim())
    const rawKey = match?.[1]?.trim()
    const rawValues = match?.[2]
    if (!rawKey || rawValues === undefined) {
      throw bad(`--set: expected key=v1,v2 like num_ctx=2048,4096, got "${input}"`)
    }
    const values = rawValues
      .split(',')
      .map((value) => value.trim())
      .filter((value) => value !== '')
      .map(parseParamValue)
    if (values.length === 0) throw bad(`--set ${rawKey}: expected at least one value after "="`)
    let target: SweepParam['target']
    let key = rawKey
    if (rawKey.startsWith('request.')) {
      target = 'request'
      key = rawKey.slice('request.'.length)
    } else if (rawKey.startsWith('server.') || serverFlag(rawKey) !== undefined) {
      target = 'server'
      key = rawKey.replace(/^server\./, '')
      if (!managed) {
        throw bad(
          `--set ${rawKey}: "${key}" is a llama-server argument, and velo can only vary it on a llama-server it starts`,
          `pass --gguf FILE so velo starts llama-server per value, or --set request.${key}=... to send it as a request field`,
        )
      }
    } else {
      target = 'request'
    }
    if (params.some((param) => param.key === key && param.target === target)) {
      throw bad(`--set: "${key}" is given twice; list all its values in one --set ${key}=v1,v2`)
    }
    params.push({ key, target, values })
  }
  return params
}

/** Every combination of the parameters' values (the cartesian product); one empty combination for none. */
export function combinations(params: readonly SweepParam[]): Record<string, ParamValue>[] {
  let result: Record<string, ParamValue>[] = [{}]
  for (const param of params) {
    const next: Record<string, ParamValue>[] = []
    for (const combination of result) {
      for (const value of param.values) next.push({ ...combination, [param.key]: value })
    }
    result = next
  }
  return result
}

/** llama-server arguments for a combination: `true` is a bare flag, `false` leaves it out. */
export function serverArgs(combination: Record<string, ParamValue>): string[] {
  const args: string[] = []
  for (const [key, value] of Object.entries(combination)) {
    const flag = serverFlag(key) ?? `--${key}`
    if (value === false) continue
    if (value === true) args.push(flag)
    else args.push(flag, String(value))
  }
  return args
}

/** `ttft=500ms,itl=50ms,e2e=2s` -> { ttftMs: 500, itlMs: 50, e2eMs: 2000 }. */
export function parseSlo(input: string): Slo {
  const slo: Slo = {}
  for (const part of input.split(',').map((text) => text.trim())) {
    if (!part) continue
    const [name, value] = part.split('=').map((text) => text.trim())
    const ms = value === undefined ? undefined : parseDuration(value)
    if (ms === undefined || ms <= 0) {
      throw bad(`--slo: expected limits like ttft=500ms,itl=50ms,e2e=5s, got "${part}"`)
    }
    if (name === 'ttft') slo.ttftMs = ms
    else if (name === 'itl' || name === 'tpot') slo.itlMs = ms
    else if (name === 'e2e') slo.e2eMs = ms
    else throw bad(`--slo: unknown limit "${name}"; use ttft, itl or e2e`)
  }
  if (Object.keys(slo).length === 0) throw bad('--slo: expected at least one limit like ttft=500ms')
  return slo
}

/** `--bandwidth 50` (GB/s), `measure` or `off`. */
export function parseBandwidth(input: string): number | 'measure' | 'off' {
  if (input === 'measure' || input === 'off') return input
  const match = /^\s*(\d+(?:\.\d+)?)\s*(gb\/s|gbps|gb)?\s*$/i.exec(input)
  if (!match) throw bad(`--bandwidth: expected GB/s like 50, or measure, or off, got "${input}"`)
  const bytesPerSec = Number(match[1]) * 1e9
  if (bytesPerSec <= 0) throw bad('--bandwidth: expected a positive number of GB/s')
  return bytesPerSec
}

/** `threads=4 num_ctx=2048` (empty for no combination). */
export function paramsLabel(params: Record<string, ParamValue>): string {
  return Object.entries(params)
    .map(([key, value]) => `${key}=${String(value)}`)
    .join(' ')
}
