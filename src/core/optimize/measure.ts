import { createParser } from 'eventsource-parser'
import { request } from 'undici'
import { startLlamaServer } from '../engine/llama-server.js'
import { errorMessage, VeloError } from '../errors.js'
import { spawnSupervised } from '../process/supervise.js'
import { parametersToLlamaServerArgs, parametersToOllamaOptions } from '../profiles/export.js'
import type { Goal, Parameters } from '../profiles/schema.js'
import { median, percentile } from './stats.js'
import type { Measurement } from './trial-log.js'

/** The workload every trial of a run measures, baseline included. */
export interface Workload {
  goal: Goal
  /** Streams at once (throughput); 1 for speed and latency. */
  concurrency: number
  promptTokens: number
  genTokens: number
  /** Samples per trial: llama-bench repetitions, or rounds of `concurrency` requests. */
  repetitions: number
  /** throughput: a configuration whose p99 TTFT is above this is infeasible. */
  maxTtftMs: number
}

export const GOAL_UNITS: Record<Goal, { metric: string; unit: string; higherIsBetter: boolean }> = {
  speed: { metric: 'generation tokens/s, one stream', unit: 'tok/s', higherIsBetter: true },
  latency: { metric: 'time to first token', unit: 'ms', higherIsBetter: false },
  throughput: { metric: 'aggregate generation tokens/s', unit: 'tok/s', higherIsBetter: true },
}

function fromSamples(goal: Goal, samples: number[], p99TtftMs?: number, maxTtftMs?: number): Measurement {
  const value = median(samples)
  const feasible = p99TtftMs === undefined || maxTtftMs === undefined || p99TtftMs <= maxTtftMs
  // Scores are higher-is-better for every goal: 1000/ms is first tokens per second.
  const score = goal === 'latency' ? 1000 / value : value
  return { value, samples, score, feasible, ...(p99TtftMs === undefined ? {} : { p99TtftMs }) }
}

// ---------------------------------------------------------------------------------------------
// llama-bench: the microbenchmark for speed (generation) and latency (prompt processing).

export function llamaBenchArgs(candidate: Parameters): string[] {
  const args: string[] = []
  const add = (flag: string, value: string | number | undefined): void => {
    if (value !== undefined) args.push(flag, String(value))
  }
  add('-ngl', candidate.gpuLayers)
  add('-t', candidate.threads)
  add('-b', candidate.batch)
  add('-ub', candidate.ubatch)
  add('-fa', candidate.flashAttention)
  add('-ctk', candidate.cacheTypeK)
  add('-ctv', candidate.cacheTypeV)
  return args
}

interface BenchRow {
  samples_ts?: number[]
  avg_ts?: number
}

async function runLlamaBench(benchPath: string, args: string[]): Promise<BenchRow[]> {
  const rows: BenchRow[] = []
  const proc = spawnSupervised(benchPath, [...args, '-o', 'jsonl'], {
    onLine: (line) => {
      if (!line.startsWith('{')) return
      try {
        rows.push(JSON.parse(line) as BenchRow)
      } catch {
        // A log line that happens to start with a brace.
      }
    },
  })
  const code = await proc.exited
  if (code !== 0 || rows.length === 0) {
    throw new Error(`llama-bench exited (${code}): ${proc.output().split('\n').slice(-6).join(' | ')}`)
  }
  return rows
}

/** speed: generation tokens/s of one stream after a prompt; latency: TTFT from prompt processing speed. */
export async function measureWithLlamaBench(
  benchPath: string,
  model: string,
  candidate: Parameters,
  workload: Workload,
): Promise<Measurement> {
  const repetitions = ['-r', String(workload.repetitions)]
  if (workload.goal === 'latency') {
    const rows = await runLlamaBench(benchPath, [
      '-m',
      model,
      '-p',
      String(workload.promptTokens),
      '-n',
      '0',
      ...repetitions,
      ...llamaBenchArgs(candidate),
    ])
    const rates = rows.flatMap((row) => row.samples_ts ?? [])
    // Time to first token is the prompt's processing time; one decode step is left out.
    return fromSamples(
      'latency',
      rates.map((rate) => (workload.promptTokens / rate) * 1000),
    )
  }
  const rows = await runLlamaBench(benchPath, [
    '-m',
    model,
    '-p',
    '0',
    '-n',
    String(workload.genTokens),
    '-d',
    String(workload.promptTokens),
    ...repetitions,
    ...llamaBenchArgs(candidate),
  ])
  return fromSamples(
    'speed',
    rows.flatMap((row) => row.samples_ts ?? []),
  )
}

// ---------------------------------------------------------------------------------------------
// Streams against a server: throughput (and speed/latency when there is no llama-bench, or on Ollama).

export interface StreamResult {
  ttftMs: number
  tokens: number
  /** Generation rate the server measured for this request, when it reports one. */
  genTps: number | undefined
}

export type SendRequest = (prompt: string, genTokens: number) => Promise<StreamResult>

const WORDS =
  'the of and to in is was for on that with as by at from his her it an were are which this be or have one had not but what all when there can more been if no out so up said its about into than them only other new some could time these two may then do first any my now such like our over man me even most made after also did many before must through back years where much your way well down should because each just those people how too little state good very make world still own see men work long get here between both life being under never day same another know while last might us great old year off come since against go came right used take three'.split(
    ' ',
  )

/** About `tokens` tokens of text (common words are one token each), distinct per request so no cache helps. */
export function promptOf(tokens: number, tag: string): string {
  const words: string[] = [`Request ${tag}:`]
  for (let i = 0; words.length < tokens; i++) words.push(WORDS[(i * 7 + tag.length) % WORDS.length] ?? 'the')
  return words.join(' ')
}

interface LoadResult {
  results: StreamResult[]
  /** Generated tokens per second of each round, all streams together. */
  roundRates: number[]
}

/** `rounds` rounds of `concurrency` streams started together; a round ends when its last stream does. */
export async function driveLoad(
  send: SendRequest,
  workload: Pick<Workload, 'concurrency' | 'promptTokens' | 'genTokens'>,
  rounds: number,
  tag: string,
): Promise<LoadResult> {
  const results: StreamResult[] = []
  const roundRates: number[] = []
  for (let round = 0; round < rounds; round++) {
    const started = performance.now()
    const batch = await Promise.all(
      Array.from({ length: workload.concurrency }, (_, i) =>
        send(promptOf(workload.promptTokens, `${tag}-${round}-${i}`), workload.genTokens),
      ),
    )
    const seconds = (performance.now() - started) / 1000
    results.push(...batch)
    roundRates.push(batch.reduce((sum, r) => sum + r.tokens, 0) / seconds)
  }
  return { results, roundRates }
}

function measurementFromLoad(load: LoadResult, workload: Workload): Measurement {
  const ttfts = load.results.map((r) => r.ttftMs)
  switch (workload.goal) {
    case 'speed':
      return fromSamples(
        'speed',
        load.results.map((r) => r.genTps ?? 0),
      )
    case 'latency':
      return fromSamples('latency', ttfts)
    case 'throughput':
      return fromSamples('throughput', load.roundRates, percentile(ttfts, 99), workload.maxTtftMs)
  }
}

async function postStream(url: string, body: unknown, onChunk: (text: string) => void): Promise<void> {
  const response = await request(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    headersTimeout: 300_000,
    bodyTimeout: 300_000,
  })
  if (response.statusCode !== 200) {
    const text = await response.body.text()
    throw new Error(`${url} answered ${response.statusCode}: ${text.slice(0, 200)}`)
  }
  const decoder = new TextDecoder()
  for await (const chunk of response.body) onChunk(decoder.decode(chunk as Uint8Array, { stream: true }))
}

interface LlamaCompletionChunk {
  content?: string
  stop?: boolean
  tokens_predicted?: number
  timings?: { predicted_n?: number; predicted_per_second?: number }
}

/** One streamed request to llama-server's native /completion, with a fixed number of generated tokens. */
export function llamaServerSender(baseUrl: string): SendRequest {
  return async (prompt, genTokens) => {
    const started = performance.now()
    let ttftMs: number | undefined
    let tokens = 0
    let genTps: number | undefined
    const parser = createParser({
      onEvent(event) {
        const chunk = JSON.parse(event.data) as LlamaCompletionChunk
        if (ttftMs === undefined && chunk.content) ttftMs = performance.now() - started
        if (chunk.stop) {
          tokens = chunk.timings?.predicted_n ?? chunk.tokens_predicted ?? 0
          genTps = chunk.timings?.predicted_per_second
        }
      },
    })
    await postStream(
      `${baseUrl}/completion`,
      {
        prompt,
        n_predict: genTokens,
        stream: true,
        // A fixed amount of work per request: no early end of sequence, no reuse of cached prompts.
        ignore_eos: true,
        cache_prompt: false,
        temperature: 0,
      },
      (text) => parser.feed(text),
    )
    return { ttftMs: ttftMs ?? performance.now() - started, tokens, genTps }
  }
}

interface OllamaChunk {
  response?: string
  done?: boolean
  eval_count?: number
  eval_duration?: number
}

/** Ollama's own sampling seed for every measured request: the same sequences for every candidate. */
const OLLAMA_SEED = 42

/**
 * One streamed /api/generate with the candidate's options; raw, so the prompt is sent as is.
 *
 * Sampled (Ollama's default temperature, a fixed seed), not greedy: Ollama has no `ignore_eos`, and
 * it stops a prediction once the model has produced the same token more than 30 times in a row,
 * ending the stream without its `done` line. Greedy decoding on a small model falls into such a
 * loop within a few dozen tokens; that cut a third of the requests short (and, with no `done`
 * line, they counted as no tokens at all). Tokens are also counted as they stream, for an answer
 * that ends without its counts.
 */
export function ollamaSender(baseUrl: string, model: string, options: Record<string, number>): SendRequest {
  return async (prompt, genTokens) => {
    const started = performance.now()
    let ttftMs: number | undefined
    let streamed = 0
    let tokens: number | undefined
    let genTps: number | undefined
    let partial = ''
    await postStream(
      `${baseUrl}/api/generate`,
      {
        model,
        prompt,
        raw: true,
        stream: true,
        options: { ...options, num_predict: genTokens, seed: OLLAMA_SEED },
      },
      (text) => {
        const lines = (partial + text).split('\n')
        partial = lines.pop() ?? ''
        for (const line of lines) {
          if (!line.trim()) continue
          const chunk = JSON.parse(line) as OllamaChunk & { error?: string }
          if (chunk.error) throw new Error(`ollama: ${chunk.error}`)
          if (chunk.response) {
            streamed++
            if (ttftMs === undefined) ttftMs = performance.now() - started
          }
          if (chunk.done) {
            tokens = chunk.eval_count
            if (chunk.eval_count && chunk.eval_duration)
              genTps = chunk.eval_count / (chunk.eval_duration / 1e9)
          }
        }
      },
    )
    return { ttftMs: ttftMs ?? performance.now() - started, tokens: tokens ?? streamed, genTps }
  }
}

/** Start llama-server with the candidate's arguments, warm it, drive the workload, stop it. */
export async function measureWithLlamaServer(
  serverPath: string,
  model: string,
  candidate: Parameters,
  workload: Workload,
  tag: string,
): Promise<Measurement> {
  const server = await startLlamaServer({
    serverPath,
    model,
    args: parametersToLlamaServerArgs(candidate),
    startTimeoutMs: 180_000,
  })
  try {
    const send = llamaServerSender(server.url)
    // The first decode pays one-off costs (page faults on the weights, thread start-up).
    await send(promptOf(8, `${tag}-warm`), 4)
    const load = await driveLoad(send, workload, workload.repetitions, tag)
    return measurementFromLoad(load, workload)
  } finally {
    await server.stop()
  }
}

/** Ollama takes num_ctx, num_gpu, num_thread and num_batch per request; a change reloads the model. */
export async function measureWithOllama(
  url: string,
  model: string,
  candidate: Parameters,
  workload: Workload,
  tag: string,
): Promise<Measurement> {
  const options = { ...parametersToOllamaOptions(candidate) } as Record<string, number>
  const send = ollamaSender(url, model, options)
  try {
    // Loads (or reloads) the model with these options, outside the measurement.
    await send(promptOf(8, `${tag}-warm`), 4)
  } catch (error) {
    throw new VeloError('VELO_UPSTREAM_ERROR', `ollama could not run ${model}: ${errorMessage(error)}`)
  }
  // speed and latency run one stream (concurrency 1) per round, one round per repetition.
  const load = await driveLoad(send, workload, workload.repetitions, tag)
  return measurementFromLoad(load, workload)
}
