import { existsSync } from 'node:fs'
import { Flags } from '@oclif/core'
import { VeloCommand } from '../base-command.js'
import { loadConfig } from '../core/config/load.js'
import { parseBytes, parseDuration } from '../core/config/units.js'
import { VeloError } from '../core/errors.js'
import { type OptimizeResult, optimize } from '../core/optimize/optimize.js'
import { WAIT_IDLE_DEFAULTS } from '../core/optimize/quiet.js'
import { renderOptimizeResult } from '../core/optimize/render.js'
import { expandHome } from '../core/paths.js'
import type { Goal } from '../core/profiles/schema.js'
import { configFlag } from '../flags.js'
import { optimizeProgress } from '../ui/live-progress.js'

function bytesFlag(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined
  const bytes = parseBytes(value)
  if (bytes === undefined || bytes <= 0) {
    throw new VeloError('VELO_BAD_REQUEST', `${flag}: expected a size like 512MiB or 8GiB, got "${value}"`, {
      exitCode: 2,
    })
  }
  return bytes
}

function durationFlag(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined
  const ms = parseDuration(value)
  if (ms === undefined || ms <= 0) {
    throw new VeloError('VELO_BAD_REQUEST', `${flag}: expected a duration like 90s or 10m, got "${value}"`, {
      exitCode: 2,
    })
  }
  return ms
}

export default class Optimize extends VeloCommand {
  static override description =
    'Search a model’s llama-server or Ollama parameters on this machine for a goal and keep the best as a profile'
  static override examples = [
    '<%= config.bin %> optimize --model ~/models/qwen2.5-7b-q4_k_m.gguf --goal speed',
    '<%= config.bin %> optimize --model ~/models/qwen2.5-7b-q4_k_m.gguf --goal throughput --concurrency 8 --min-ctx 8192 --time-budget 20m',
    '<%= config.bin %> optimize --url http://127.0.0.1:11434 --model llama3.2 --goal latency --apply',
  ]
  static override enableJsonFlag = true
  static override flags = {
    model: Flags.string({
      required: true,
      description: 'a GGUF file, a managed model id from velo.yaml, or an Ollama model name with --url',
    }),
    url: Flags.string({ description: 'an Ollama server: tune the model there through per-request options' }),
    goal: Flags.string({
      options: ['speed', 'latency', 'throughput'],
      default: 'speed',
      description:
        'speed: one stream’s tokens/s; latency: time to first token; throughput: tokens/s at --concurrency',
    }),
    concurrency: Flags.integer({ min: 1, default: 4, description: 'streams at once for --goal throughput' }),
    'min-ctx': Flags.integer({
      min: 1,
      description: 'context every request must get (default: the model’s, at most 4096)',
    }),
    'max-trials': Flags.integer({
      min: 3,
      default: 30,
      description: 'measured configurations in all, baseline and repeats included',
    }),
    'time-budget': Flags.string({ description: 'stop starting trials after this long, e.g. 10m' }),
    'max-memory': Flags.string({
      description: 'RAM a configuration may take, e.g. 6GiB (default: 90% of free RAM)',
    }),
    'max-vram': Flags.string({
      description: 'GPU memory a configuration may take (default: 90% of free VRAM)',
    }),
    'prompt-tokens': Flags.integer({
      min: 1,
      description: 'prompt size per request (default 128; 512 for latency)',
    }),
    'gen-tokens': Flags.integer({ min: 1, default: 64, description: 'tokens generated per request' }),
    repetitions: Flags.integer({
      min: 1,
      description: 'samples per trial (default 3 with llama-bench, else 2)',
    }),
    'max-ttft': Flags.string({
      description: 'throughput: p99 time to first token to stay under (default 10s)',
    }),
    resume: Flags.boolean({
      description: 'continue the interrupted run with these settings; fail when there is none',
      exclusive: ['fresh'],
    }),
    fresh: Flags.boolean({
      description: 'discard an interrupted run’s trial log and start over',
      exclusive: ['resume'],
    }),
    axes: Flags.string({
      description:
        'search only these axes, e.g. threads,parallel (gpuLayers, threads, parallel, flashAttention, kvCache, ubatch, batch)',
    }),
    'wait-idle': Flags.boolean({
      description:
        'wait for other processes to go idle before each trial and repeat a trial they disturbed (Linux)',
    }),
    apply: Flags.boolean({
      description: 'Ollama: create <model>-velo with the tuned parameters',
      dependsOn: ['url'],
    }),
    config: configFlag,
  }

  async run(): Promise<OptimizeResult> {
    const { flags } = await this.parse(Optimize)
    const { config } = await loadConfig(flags.config)
    let model = expandHome(flags.model)
    if (!flags.url && !existsSync(model)) {
      const managed = config.managed.models[flags.model]
      if (managed) model = expandHome(managed.path)
    }
    // An interrupted run exits through process.exit, whose hook stops llama-server and llama-bench;
    // the trial log already holds every finished trial, so the next run continues from there.
    const interrupt = (code: number) => () => process.exit(code)
    process.once('SIGINT', interrupt(130))
    process.once('SIGTERM', interrupt(143))
    const progress = optimizeProgress()
    const result = await optimize({
      model,
      url: flags.url,
      goal: flags.goal as Goal,
      concurrency: flags.concurrency,
      minCtx: flags['min-ctx'],
      maxTrials: flags['max-trials'],
      timeBudgetMs: durationFlag(flags['time-budget'], '--time-budget'),
      maxMemoryBytes: bytesFlag(flags['max-memory'], '--max-memory'),
      maxVramBytes: bytesFlag(flags['max-vram'], '--max-vram'),
      promptTokens: flags['prompt-tokens'],
      genTokens: flags['gen-tokens'],
      repetitions: flags.repetitions,
      maxTtftMs: durationFlag(flags['max-ttft'], '--max-ttft'),
      resume: flags.fresh ? 'fresh' : flags.resume ? 'require' : 'auto',
      apply: flags.apply,
      axes: flags.axes?.split(','),
      quiet: flags['wait-idle']
        ? {
            ...WAIT_IDLE_DEFAULTS,
            onWait: (cores) =>
              progress.note(
                `  waiting for the machine to go idle (other processes use ${cores.toFixed(1)} cores)`,
              ),
            onRetry: (cores) =>
              progress.note(
                `  other processes used ${cores.toFixed(1)} cores during the trial; measuring it again`,
              ),
          }
        : undefined,
      configuredServer: config.engine.llamaServer,
      onEvent: (event) => progress.event(event),
    }).finally(() => progress.close())
    if (!this.jsonEnabled()) this.log(renderOptimizeResult(result))
    return result
  }
}
