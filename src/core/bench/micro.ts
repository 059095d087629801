import { HttpTarget } from '../backends/http.js'
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
  /**
   * Also run llama-bench on the server's GGUF, one repetition right after each of the server's (the
   * order alternating), so a change in the machine's load hits both figures alike.
   */
  llamaBench?: InterleavedLlamaBench | undefined
  seed?: number | undefined
  timeoutMs?: number | undefined
  signal?: AbortSignal | undefined
  onProgress?: ((message: string) => void) | undefined
}

/** llama-bench's side of an interleaved run: everything but the tests and repetitions. */
export type InterleavedLlamaBench = Omit<LlamaBenchOptions, 'promptTokens' | 'genTokens' | 'repetitions'>

interface Sample {
  rate: number
  source: MicroResult['source']
}

function result(
  test: string,
  kind: 'pp' | 'tg',
  tokens: number,
  source: MicroResult['source'],
  options: Pick<ServerMicroOptions, 'model' | 'params'>,
  threads: number | undefined,
  samples: number[],
): MicroResult {
  return {
    test,
    kind,
    tokens,
    source,
    model: options.model,
    params: options.params ?? {},
    threads,
    tokensPerSec: mean(samples),
    stddev: stddev(samples),
    samples,
  }
}

/** The part of llama-server's `timings` a microbenchmark reads. */
interface CompletionTimings {
  cache_n?: number
  prompt_n?: number
  prompt_ms?: number
  predicted_n?: number
  predicted_ms?: number
}

/**
 * Decode steps per second from llama-server's timings. Its first generated token comes from the
 * prompt's logits, and `predicted_ms` runs from that token to the last, so N tokens took N - 1 decode
 * steps in that time (newer builds' `predicted_per_second` says the same). llama-bench's tgN times N
 * decode steps: steps per second is the figure both measure.
 */
export function decodeStepsPerSec(timings: CompletionTimings): number | undefined {
  const steps = (timings.predicted_n ?? 0) - 1
  const ms = timings.predicted_ms ?? 0
  return steps > 0 && ms > 0 ? (steps / ms) * 1000 : undefined
}

/** Prompt tokens processed per second from llama-server's timings (cached tokens excluded). */
export function promptTokensPerSec(timings: CompletionTimings): number | undefined {
  const tokens = timings.prompt_n ?? 0
  const ms = timings.prompt_ms ?? 0
  return tokens > 0 && ms > 0 ? (tokens / ms) * 1000 : undefined
}

/**
 * pp/tg through llama-server's raw `/completion`, the closest a server gets to llama-bench: no chat
 * template, no streaming (nothing to send per token while the clock runs), no prompt cache, EOS
 * ignored, greedy sampling; the speed is the engine's own timing of the decode, not the client's.
 */
class RawCompletion {
  private readonly http: HttpTarget

  constructor(
    baseUrl: string,
    private readonly options: Record<string, ParamValue>,
    timeoutMs: number | undefined,
  ) {
    this.http = new HttpTarget(baseUrl, { connections: 1, timeoutMs })
  }

  private async timings(
    prompt: string | number[],
    predict: number,
    signal: AbortSignal | undefined,
  ): Promise<CompletionTimings> {
    const response = await this.http.json<{ timings?: CompletionTimings }>('/completion', {
      body: {
        prompt,
        n_predict: predict,
        ignore_eos: true,
        cache_prompt: false,
        stream: false,
        // llama-bench does not sample; top_k 1 leaves each later sampler one candidate.
        top_k: 1,
        ...this.options,
      },
      signal,
    })
    if (!response.timings) {
      throw new VeloError('VELO_UPSTREAM_ERROR', `${this.http.baseUrl}/completion returned no timings`)
    }
    return response.timings
  }

  /** ppN: exactly these prompt tokens, one token generated. */
  async prompt(tokens: number[], signal: AbortSignal | undefined): Promise<number> {
    const timings = await this.timings(tokens, 1, signal)
    const rate = promptTokensPerSec(timings)
    if (rate === undefined || timings.prompt_n !== tokens.length) {
      throw new VeloError(
        'VELO_UPSTREAM_ERROR',
        `${this.http.baseUrl} processed ${timings.prompt_n ?? 0} of ${tokens.length} prompt tokens`,
      )
    }
    return rate
  }

  /** tgN: N tokens after a few-token prompt. */
  async generate(prompt: string, tokens: number, signal: AbortSignal | undefined): Promise<number> {
    const timings = await this.timings(prompt, tokens, signal)
    const rate = decodeStepsPerSec(timings)
    if (rate === undefined || timings.predicted_n !== tokens) {
      throw new VeloError(
        'VELO_UPSTREAM_ERROR',
        `${this.http.baseUrl} generated ${timings.predicted_n ?? 0} of ${tokens} tokens`,
      )
    }
    return rate
  }

  close(): Promise<void> {
    return this.http.close()
  }
}

/** `count` token ids of unique text, from the server's tokenizer (llama-bench's ppN is N tokens). */
async function promptIds(client: BackendClient, count: number, index: number): Promise<number[]> {
  if (!client.tokenize) throw new VeloError('VELO_INTERNAL', `${client.baseUrl} has no tokenizer`)
  const filler = 'the quick brown fox jumps over the lazy dog and '
  // About one token per character is the worst case; the text is cut to length after tokenizing.
  const text = `${uniqueTag(index)} ${filler.repeat(Math.ceil(count / 8) + 1)}`
  const ids = await client.tokenize(text)
  if (ids.length < count) {
    throw new VeloError(
      'VELO_UPSTREAM_ERROR',
      `${client.baseUrl}/tokenize gave ${ids.length} of ${count} tokens`,
    )
  }
  return ids.slice(0, count)
}

/**
 * llama-bench's pp/tg tests through a server, from the engine's own timings: ppN processes an N-token
 * prompt and generates one token; tgN generates N tokens after a short prompt (EOS ignored where the
 * engine allows). llama-server runs them on its raw `/completion` endpoint (see RawCompletion); other
 * servers through the chat API. One untimed run first; every prompt is unique so no prompt cache
 * helps. With `llamaBench`, llama-bench runs interleaved with the server (see ServerMicroOptions).
 */
export async function runMicroBench(options: ServerMicroOptions): Promise<MicroResult[]> {
  const seed = options.seed ?? 1
  const raw =
    options.client.kind === 'llama-server'
      ? new RawCompletion(options.client.baseUrl, options.options ?? {}, options.timeoutMs)
      : undefined
  // Greedy sampling: llama-bench does not sample at all, and a full sampler over a large vocabulary
  // costs real time per token on a small model. Options from a sweep still win.
  const greedy: Record<string, ParamValue> = options.client.api === 'ollama' ? { top_k: 1 } : {}
  const base = {
    client: options.client,
    model: options.model,
    options: { ...greedy, ...options.options },
    ignoreEos: true,
    temperature: 0,
    seed: undefined,
  }
  const chatSample = async (
    request: Parameters<typeof timeRequest>[1],
    kind: 'pp' | 'tg',
  ): Promise<Sample> => {
    const record = await timeRequest(base, request, performance.now(), options.signal)
    if (!record.ok) {
      throw new VeloError(record.code ?? 'VELO_UPSTREAM_ERROR', record.error ?? 'failed')
    }
    const engine = kind === 'pp' ? enginePromptRate(record) : engineGenerationRate(record)
    if (engine !== undefined) return { rate: engine, source: 'engine' }
    // No engine timings: time it at the client (prompt: tokens over TTFT; generation: after the first token).
    if (kind === 'pp' && record.ttftMs && record.promptTokens) {
      return { rate: (record.promptTokens / record.ttftMs) * 1000, source: 'client' }
    }
    const tokens = record.outputTokens ?? 0
    if (kind === 'tg' && record.ttftMs !== undefined && tokens > 1 && record.e2eMs > record.ttftMs) {
      return { rate: ((tokens - 1) / (record.e2eMs - record.ttftMs)) * 1000, source: 'client' }
    }
    throw new VeloError(
      'VELO_UPSTREAM_ERROR',
      `${options.client.baseUrl} gave nothing to time a ${kind} test by`,
    )
  }

  let counter = 0
  /** One measured run of a test through the server, each with a prompt no other run used. */
  const samplerFor = async (kind: 'pp' | 'tg', tokens: number): Promise<() => Promise<Sample>> => {
    if (raw && kind === 'pp') {
      return async () => {
        counter += 1
        const ids = await promptIds(options.client, tokens, counter)
        return { rate: await raw.prompt(ids, options.signal), source: 'engine' }
      }
    }
    if (raw) {
      return async () => {
        counter += 1
        return {
          rate: await raw.generate(`${uniqueTag(counter)} write on.`, tokens, options.signal),
          source: 'engine',
        }
      }
    }
    if (kind === 'pp') {
      options.onProgress?.(`pp${tokens}: calibrating a ${tokens}-token prompt`)
      const workload = await buildSyntheticWorkload(options.client, {
        model: options.model,
        promptTokens: tokens,
        genTokens: 1,
        seed,
        signal: options.signal,
      })
      return () => chatSample(workload.next(), 'pp')
    }
    return () => {
      counter += 1
      return chatSample(
        {
          messages: [{ role: 'user', content: `${uniqueTag(counter)} write on.` }],
          maxTokens: tokens,
          expectedPromptTokens: undefined,
        },
        'tg',
      )
    }
  }

  const benchSample = async (kind: 'pp' | 'tg', tokens: number): Promise<MicroResult | undefined> => {
    if (!options.llamaBench) return undefined
    const [measured] = await runLlamaBench({
      ...options.llamaBench,
      promptTokens: kind === 'pp' ? [tokens] : [],
      genTokens: kind === 'tg' ? [tokens] : [],
      repetitions: 1,
    })
    if (!measured)
      throw new VeloError('VELO_PROCESS_FAILED', `llama-bench reported no ${kind}${tokens} result`)
    return measured
  }

  const served: MicroResult[] = []
  const benched: MicroResult[] = []
  const tests = [
    ...options.promptTokens.map((tokens) => ({ kind: 'pp' as const, tokens })),
    ...options.genTokens.map((tokens) => ({ kind: 'tg' as const, tokens })),
  ]
  try {
    for (const { kind, tokens } of tests) {
      const test = `${kind}${tokens}`
      const sample = await samplerFor(kind, tokens)
      await sample()
      const samples: number[] = []
      const benchSamples: number[] = []
      let benchThreads: number | undefined
      let source: MicroResult['source'] = 'engine'
      for (let repetition = 1; repetition <= options.repetitions; repetition += 1) {
        options.onProgress?.(`${test}: run ${repetition}/${options.repetitions}`)
        // Alternate which goes first, so a steady drift in load favours neither.
        const benchFirst = repetition % 2 === 0
        let paired = benchFirst ? await benchSample(kind, tokens) : undefined
        const measured = await sample()
        if (!benchFirst) paired = await benchSample(kind, tokens)
        samples.push(measured.rate)
        source = measured.source
        if (paired) {
          benchSamples.push(...paired.samples)
          benchThreads = paired.threads
        }
      }
      // Unless told, llama-server and llama-bench both use the engine's default thread count.
      const threads = options.threads ?? benchThreads
      served.push(result(test, kind, tokens, source, options, threads, samples))
      if (options.llamaBench) {
        const context = { model: options.model, params: options.llamaBench.params ?? options.params }
        benched.push(result(test, kind, tokens, 'llama-bench', context, benchThreads, benchSamples))
      }
    }
  } finally {
    await raw?.close()
  }
  return [...served, ...benched]
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
    // Scheduling: the same priority and polling on both sides (`--prio 2` keeps other work on the
    // machine from pre-empting the measurement).
    '--prio': '--prio',
    '--poll': '--poll',
    '--cpu-mask': '-C',
    '-C': '-C',
    '--cpu-strict': '--cpu-strict',
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
    // A value, not the next flag (`--prio -1` is a value).
    if (mapped && value !== undefined && !/^-\D/.test(value)) {
      args.push(mapped, value)
      index += 1
    }
  }
  return { threads, args }
}
