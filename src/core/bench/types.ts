/**
 * The shapes of a bench run: what goes in (BenchOptions), what comes out (BenchReport, whose JSON
 * form is `velo bench --json` and the `--baseline` file), and the progress events in between.
 * `velo optimize` builds on the same types. docs/bench.md documents the JSON schema.
 */
import type { BackendApi, BackendKind } from '../backends/types.js'

export const BENCH_SCHEMA = 'velo.bench/1'

/** count, mean, median, p90, p99, stddev (sample), min and max of a set of values. */
export interface Summary {
  count: number
  mean: number
  median: number
  p90: number
  p99: number
  stddev: number
  min: number
  max: number
}

export type ParamValue = string | number | boolean

/** One `--set key=v1,v2`: a request option, or an argument of a llama-server velo manages. */
export interface SweepParam {
  key: string
  target: 'request' | 'server'
  values: ParamValue[]
}

/** Service-level objective for goodput: a request counts when it meets every limit given. */
export interface Slo {
  ttftMs?: number | undefined
  /** The request's mean inter-token latency (its time per output token after the first). */
  itlMs?: number | undefined
  e2eMs?: number | undefined
}

export type Arrivals = 'poisson' | 'constant'

/** llama-server started (and restarted per combination of server arguments) by velo. */
export interface ManagedServerOptions {
  gguf: string
  /** llama-server binary; velo's engine (config > PATH > velo build) when absent. */
  serverPath?: string | undefined
  args?: string[] | undefined
  /** Served model name; the file name without `.gguf` when absent. */
  alias?: string | undefined
}

export interface MicroOptions {
  /** Prompt lengths for prompt-processing tests (pp512). */
  promptTokens: number[]
  /** Generation lengths for generation tests (tg128). */
  genTokens: number[]
  /** Also run llama-bench on the GGUF (managed mode, llama-bench beside llama-server). */
  llamaBench: boolean
}

export interface BenchOptions {
  /** The server to measure; absent when `managed` is given. */
  url?: string | undefined
  api?: BackendApi | undefined
  managed?: ManagedServerOptions | undefined
  /** Models to measure; empty means the server's only model. */
  models: string[]
  concurrency: number[]
  /** Requests per level and repetition (default 20 when no duration is given). */
  requests?: number | undefined
  durationMs?: number | undefined
  /** Requests per second; absent means each level keeps `concurrency` requests in flight. */
  rate?: number | undefined
  arrivals?: Arrivals | undefined
  promptTokens: number
  genTokens: number
  /** Requests sent before measuring, per model and combination. */
  warmup: number
  repetitions: number
  /** JSONL of `{"prompt": ...}` or `{"messages": [...]}` lines, used instead of synthetic prompts. */
  dataset?: string | undefined
  /** Tokens of a system prompt that every request shares (measures prompt caching). */
  sharedPrefixTokens?: number | undefined
  sweep: SweepParam[]
  slo?: Slo | undefined
  /** Memory bandwidth in bytes/s for decode efficiency, `measure` to probe it, `off` for none. */
  bandwidth?: number | 'measure' | 'off' | undefined
  /** Run pp/tg microbenchmarks instead of load levels. */
  micro?: MicroOptions | undefined
  temperature?: number | undefined
  seed?: number | undefined
  /** Per-request timeout (headers and between chunks). */
  timeoutMs?: number | undefined
  signal?: AbortSignal | undefined
}

/** Figures of one repetition of a level: the spread across these is the run's noise. */
export interface RepetitionFigures {
  requestsPerSec: number
  outputTokensPerSec: number
  totalTokensPerSec: number
  ttftMedianMs: number | undefined
  itlMedianMs: number | undefined
  tpotMedianMs: number | undefined
  e2eMedianMs: number | undefined
  engineGenerationTokensPerSec: number | undefined
  enginePromptTokensPerSec: number | undefined
  goodputPerSec: number | undefined
}

export interface ErrorCount {
  message: string
  count: number
}

/** One (combination, model, concurrency) of a run, its repetitions pooled. */
export interface BenchRow {
  model: string
  /** The sweep combination (empty without `--set`). */
  params: Record<string, ParamValue>
  concurrency: number
  rate: number | undefined
  repetitions: number
  /** True when the run stopped during this level: the figures cover what completed. */
  partial: boolean
  requests: { total: number; completed: number; failed: number }
  /** Wall time of the measured requests, summed over repetitions. */
  durationSec: number
  /** Measured by velo at the client. */
  client: {
    ttftMs: Summary | undefined
    /** Gaps between streamed pieces of text, all requests pooled. */
    itlMs: Summary | undefined
    /** Per request: (end-to-end - TTFT) / (output tokens - 1). */
    tpotMs: Summary | undefined
    e2eMs: Summary | undefined
    requestsPerSec: number
    outputTokensPerSec: number
    totalTokensPerSec: number
  }
  /** Reported by the engine itself, per request (llama-server timings, Ollama durations). */
  engine: {
    promptTokensPerSec: Summary | undefined
    generationTokensPerSec: Summary | undefined
  }
  tokens: {
    prompt: Summary | undefined
    output: Summary | undefined
    /** Prompt tokens the engine took from its cache (llama-server). */
    cachedPrompt: Summary | undefined
  }
  goodput: { requests: number; fraction: number; requestsPerSec: number } | undefined
  decode:
    | {
        /** Tokens/s one stream could reach if each step only read the weights once. */
        boundTokensPerSec: number
        efficiency: number
        basis: 'engine' | 'client'
      }
    | undefined
  errors: ErrorCount[]
  perRepetition: RepetitionFigures[]
  /** Raw values for charts (at most 5,000 each). */
  samples: { ttftMs: number[]; e2eMs: number[] }
}

export interface MicroResult {
  /** `pp512`, `tg128`. */
  test: string
  kind: 'pp' | 'tg'
  tokens: number
  /**
   * `engine`: the server's own timings (llama-server, Ollama); `client`: timed by velo when the
   * server reports none; `llama-bench`: llama-bench -o json on the same GGUF.
   */
  source: 'engine' | 'client' | 'llama-bench'
  model: string
  params: Record<string, ParamValue>
  threads: number | undefined
  tokensPerSec: number
  stddev: number
  samples: number[]
}

export interface HardwareInfo {
  cpuModel: string
  cpuCores: number
  memoryBytes: number
  os: string
  arch: string
  /** A short stable hash of the above: runs on the same machine share it. */
  fingerprint: string
}

export interface ModelInfo {
  id: string
  sizeBytes: number | undefined
  digest: string | undefined
  parameterCount: number | undefined
  path: string | undefined
}

export interface FigureComparison {
  /** The row it belongs to: `model c=2 threads=4`. */
  row: string
  figure: string
  better: 'higher' | 'lower'
  baseline: number
  current: number
  /** How much worse (positive) or better (negative) the current figure is, in percent. */
  worsePct: number
  /**
   * The standard error of the difference between the two medians, from each side's spread over its
   * repetitions (median absolute deviation), in percent of the baseline; 0 with one repetition.
   */
  noisePct: number
  regressed: boolean
}

export interface Comparison {
  baseline: string
  thresholdPct: number
  figures: FigureComparison[]
  regressions: FigureComparison[]
  /** Rows in the baseline that this run did not measure. */
  missing: string[]
}

export interface BenchReport {
  schema: typeof BENCH_SCHEMA
  velo: { version: string }
  startedAt: string
  finishedAt: string
  target: {
    url: string
    kind: BackendKind
    api: BackendApi
    version: string | undefined
    /** Set when velo started llama-server itself. */
    managed: { gguf: string; serverPath: string; args: string[] } | undefined
  }
  environment: { hardware: HardwareInfo; models: ModelInfo[] }
  settings: {
    concurrency: number[]
    requests: number | undefined
    durationMs: number | undefined
    rate: number | undefined
    arrivals: Arrivals
    promptTokens: number
    genTokens: number
    warmup: number
    repetitions: number
    dataset: string | undefined
    sharedPrefixTokens: number | undefined
    sweep: SweepParam[]
    slo: Slo | undefined
    /** Seed of the prompts and arrivals (given, or drawn for this run); pass it to --seed to repeat them. */
    seed: number
    ignoreEos: boolean
  }
  bandwidth: { bytesPerSec: number; source: 'given' | 'measured' } | undefined
  rows: BenchRow[]
  micro: MicroResult[]
  comparison: Comparison | undefined
  /** Why the run stopped early; the rows hold what was measured until then. */
  aborted: { code: string; message: string } | undefined
}

export type BenchPhase = 'server' | 'connect' | 'calibrate' | 'warmup' | 'level' | 'micro' | 'done'

export interface BenchProgress {
  phase: BenchPhase
  message: string
  /** Of the whole run, when it can be known. */
  percent?: number | undefined
  /** While a level runs: what it has measured so far. */
  running?:
    | {
        model: string
        concurrency: number
        repetition: number
        completed: number
        failed: number
        requestsPerSec: number
        outputTokensPerSec: number
        ttftMedianMs: number | undefined
      }
    | undefined
}

export type ProgressListener = (progress: BenchProgress) => void
