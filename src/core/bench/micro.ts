import type { BackendClient } from '../backends/types.js'
import { VeloError } from '../errors.js'
import { spawnSupervised } from '../process/supervise.js'
import { engineGenerationRate, enginePromptRate } from './aggregate.js'
import { timeRequest } from './load.js'
import { mean, stddev } from './stats.js'
import type { MicroResult, ParamValue } from './types.js'
import { buildSyntheticWorkload, uniqueTag } from './workload.js'

export interface ServerMicroOptions {
  client: BackendClient
  model: string
  /** pp tests: prompt lengths, measured with a 1-token generation. */
  promptTokens: number[]
  /** tg tests: tokens generated after a short prompt. */
  genTokens: number[]
  repetitions: number
  /** The sweep combination this runs under (for the report). */
  params?: Record<string, ParamValue> | undefined
  /** Request options (Ollama options, extra OpenAI fields). */
  options?: Record<string, ParamValue> | undefined
  threads?: number | undefined
  seed?: number | undefined
  signal?: AbortSignal | undefined
  onProgress?: ((message: string) => void) | undefined
}

function result(
  test: string,
  kind: 'pp' | 'tg',
  tokens: number,
  source: MicroResult['source'],
  options: Pick<ServerMicroOptions, 'model' | 'params' | 'threads'>,
  samples: number[],
): MicroResult {
  return {
    test,
    kind,
    tokens,
    source,
    model: options.model,
    params: options.params ?? {},
    threads: options.threads,
    tokensPerSec: mean(samples),
    stddev: stddev(samples),
    samples,
  }
}

/**
 * llama-bench's pp/tg tests through a server, from the engine's own timings: ppN sends an N-token
 * prompt and generates one token; tgN generates N tokens after a short prompt (EOS ignored where the
 * engine allows). One untimed run first; every prompt is unique so no prompt cache helps.
 */
export async function runMicroBench(options: ServerMicroOptions): Promise<MicroResult[]> {
  const results: MicroResult[] = []
  const seed = options.seed ?? 1
  // Greedy sampling: llama-bench does not sample at all, and a full sampler over a large vocabulary
  // costs real time per token on a small model. Options from a sweep still win.
  const greedy: Record<string, ParamValue> =
    options.client.kind === 'llama-server' || options.client.api === 'ollama' ? { top_k: 1 } : {}
  const base = {
    client: options.client,
    model: options.model,
    options: { ...greedy, ...options.options },
    ignoreEos: true,
    temperature: 0,
    seed: undefined,
  }
  const sample = async (request: Parameters<typeof timeRequest>[1], kind: 'pp' | 'tg') => {
    const record = await timeRequest(base, request, performance.now(), options.signal)
    if (!record.ok) {
      throw new VeloError(record.code ?? 'VELO_UPSTREAM_ERROR', record.error ?? 'failed')
    }
    const engine = kind === 'pp' ? enginePromptRate(record) : engineGenerationRate(record)
    if (engine !== undefined) return { rate: engine, source: 'engine' as const }
    // No engine timings: time it at the client (prompt: tokens over TTFT; generation: after the first token).
    if (kind === 'pp' && record.ttftMs && record.promptTokens) {
      return { rate: (record.promptTokens / record.ttftMs) * 1000, source: 'client' as const }
    }
    const tokens = record.outputTokens ?? 0
    if (kind === 'tg' && record.ttftMs !== undefined && tokens > 1 && record.e2eMs > record.ttftMs) {
      return { rate: ((tokens - 1) / (record.e2eMs - record.ttftMs)) * 1000, source: 'client' as const }
    }
    throw new VeloError(
      'VELO_UPSTREAM_ERROR',
      `${options.client.baseUrl} gave nothing to time a ${kind} test by`,
    )
  }
  for (const tokens of options.promptTokens) {
    options.onProgress?.(`pp${tokens}: calibrating a ${tokens}-token prompt`)
    const workload = await buildSyntheticWorkload(options.client, {
      model: options.model,
      promptTokens: tokens,
      genTokens: 1,
      seed,
      signal: options.signal,
    })
    await sample(workload.next(), 'pp')
    const samples: number[] = []
    let source: MicroResult['source'] = 'engine'
    for (let repetition = 1; repetition <= options.repetitions; repetition += 1) {
      options.onProgress?.(`pp${tokens}: run ${repetition}/${options.repetitions}`)
      const measured = await sample(workload.next(), 'pp')
      samples.push(measured.rate)
      source = measured.source
    }
    results.push(result(`pp${tokens}`, 'pp', tokens, source, options, samples))
  }
  let counter = 0
  const shortPrompt = () => {
    counter += 1
    return `${uniqueTag(counter)} write on.`
  }
  for (const tokens of options.genTokens) {
    const request = () => ({
      messages: [{ role: 'user' as const, content: shortPrompt() }],
      maxTokens: tokens,
      expectedPromptTokens: undefined,
    })
    await sample(request(), 'tg')
    const samples: number[] = []
    let source: MicroResult['source'] = 'engine'
    for (let repetition = 1; repetition <= options.repetitions; repetition += 1) {
      options.onProgress?.(`tg${tokens}: run ${repetition}/${options.repetitions}`)
      const measured = await sample(request(), 'tg')
      samples.push(measured.rate)
      source = measured.source
    }
    results.push(result(`tg${tokens}`, 'tg', tokens, source, options, samples))
  }
  return results
}

export interface LlamaBenchOptions {
  benchPath: string
  gguf: string
  model: string
  promptTokens: number[]
  genTokens: number[]
  repetitions: number
  threads?: number | undefined
  /** Further llama-bench arguments (`-b 512`, `-fa on`). */
  args?: string[] | undefined
  params?: Record<string, ParamValue> | undefined
  timeoutMs?: number | undefined
}

interface LlamaBenchEntry {
  n_prompt?: number
  n_gen?: number
  n_threads?: number
  avg_ts?: number
  stddev_ts?: number
  samples_ts?: number[]
}

/** Turn `llama-bench -o json` output into results: pp entries have n_gen 0, tg entries n_prompt 0. */
export function parseLlamaBenchJson(
  text: string,
  context: Pick<LlamaBenchOptions, 'model' | 'params'>,
): MicroResult[] {
  const start = text.indexOf('[')
  let entries: LlamaBenchEntry[]
  try {
    entries = JSON.parse(start >= 0 ? text.slice(start) : text) as LlamaBenchEntry[]
  } catch {
    throw new VeloError('VELO_PROCESS_FAILED', 'llama-bench printed output that is not JSON')
  }
  if (!Array.isArray(entries))
    throw new VeloError('VELO_PROCESS_FAILED', 'llama-bench printed no list of tests')
  const results: MicroResult[] = []
  for (const entry of entries) {
    const prompt = entry.n_prompt ?? 0
    const gen = entry.n_gen ?? 0
    const kind = gen === 0 ? 'pp' : prompt === 0 ? 'tg' : undefined
    if (kind === undefined) continue
    const tokens = kind === 'pp' ? prompt : gen
    const samples = entry.samples_ts ?? (entry.avg_ts === undefined ? [] : [entry.avg_ts])
    results.push({
      test: `${kind}${tokens}`,
      kind,
      tokens,
      source: 'llama-bench',
      model: context.model,
      params: context.params ?? {},
      threads: entry.n_threads,
      tokensPerSec: entry.avg_ts ?? mean(samples),
      stddev: entry.stddev_ts ?? stddev(samples),
      samples,
    })
  }
  return results
}

/** Run llama-bench on a GGUF and parse its JSON. */
export async function runLlamaBench(options: LlamaBenchOptions): Promise<MicroResult[]> {
  const args = [
    '-m',
    options.gguf,
    '-p',
    options.promptTokens.length > 0 ? options.promptTokens.join(',') : '0',
    '-n',
    options.genTokens.length > 0 ? options.genTokens.join(',') : '0',
    '-r',
    String(options.repetitions),
    '-o',
    'json',
    ...(options.threads === undefined ? [] : ['-t', String(options.threads)]),
    ...(options.args ?? []),
  ]
  const proc = spawnSupervised(options.benchPath, args, { keepLines: 40 })
  let stdout = ''
  proc.child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString('utf8')
  })
  const timer = setTimeout(() => void proc.stop(1000), options.timeoutMs ?? 600_000)
  const code = await proc.exited
  clearTimeout(timer)
  if (code !== 0) {
    throw new VeloError(
      'VELO_PROCESS_FAILED',
      `llama-bench exited with ${code}: ${proc.output().split('\n').slice(-3).join(' ')}`,
      {
        suggestion: 'check the GGUF file and the arguments',
      },
    )
  }
  return parseLlamaBenchJson(stdout, options)
}

/** llama-bench equivalents of llama-server arguments in a sweep combination (the rest do not apply). */
export function llamaBenchArgs(serverArgs: readonly string[]): {
  threads: number | undefined
  args: string[]
} {
  const map: Record<string, string> = {
    '--batch-size': '-b',
    '-b': '-b',
    '--ubatch-size': '-ub',
    '-ub': '-ub',
    '--flash-attn': '-fa',
    '-fa': '-fa',
    '--cache-type-k': '-ctk',
    '-ctk': '-ctk',
    '--cache-type-v': '-ctv',
    '-ctv': '-ctv',
    '--n-gpu-layers': '-ngl',
    '-ngl': '-ngl',
  }
  let threads: number | undefined
  const args: string[] = []
  for (let index = 0; index < serverArgs.length; index += 1) {
    const flag = serverArgs[index] ?? ''
    const value = serverArgs[index + 1]
    if ((flag === '--threads' || flag === '-t') && value !== undefined) {
      threads = Number(value)
      index += 1
      continue
    }
    const mapped = map[flag]
    if (mapped && value !== undefined && !value.startsWith('-')) {
      args.push(mapped, value)
      index += 1
    }
  }
  return { threads, args }
}
