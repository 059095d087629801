import { Flags } from '@oclif/core'
import { VeloCommand } from '../base-command.js'
import { benchFromCli } from '../core/bench/cli.js'
import { renderTable } from '../core/bench/report/table.js'
import type { BenchReport } from '../core/bench/types.js'
import { configFlag } from '../flags.js'
import { benchProgress } from '../ui/live-progress.js'

export default class Bench extends VeloCommand {
  static override description =
    'Measure a model server: TTFT, inter-token latency, end-to-end latency, tokens/s and requests/s at each concurrency level, with sweeps, microbenchmarks and CI baselines'
  static override examples = [
    '<%= config.bin %> bench --url http://127.0.0.1:11434 --model qwen2.5:0.5b --concurrency 1,2,4',
    '<%= config.bin %> bench --url http://127.0.0.1:8080 --requests 50 --prompt-tokens 512 --gen-tokens 128 --html report.html',
    '<%= config.bin %> bench --url http://127.0.0.1:11434 --model llama3.2 --set num_ctx=2048,8192 --rate 2 --duration 60s',
    '<%= config.bin %> bench --gguf model.gguf --set threads=2,4 --concurrency 1,4',
    '<%= config.bin %> bench --gguf model.gguf --micro',
    '<%= config.bin %> bench --url http://127.0.0.1:8000 --repetitions 3 --baseline main.json --fail-on-regression 10',
    '<%= config.bin %> bench --result pr.json --baseline main.json --fail-on-regression 10 --md summary.md',
  ]
  static override enableJsonFlag = true
  static override flags = {
    url: Flags.string({
      description:
        'server to measure: Ollama, llama-server, velo or any OpenAI-compatible URL (kind detected)',
      exclusive: ['gguf'],
    }),
    api: Flags.string({
      options: ['ollama', 'openai'],
      description: 'force the protocol instead of detecting it',
    }),
    model: Flags.string({
      multiple: true,
      description: 'model to measure (repeatable; default: the server’s only model)',
    }),
    gguf: Flags.string({
      description:
        'a GGUF file: velo starts llama-server with it (and restarts it per --set of its arguments)',
    }),
    'server-args': Flags.string({
      description: 'extra llama-server arguments with --gguf, e.g. "--ctx-size 4096"',
    }),
    concurrency: Flags.string({
      default: '1',
      description: 'concurrency levels, each measured in turn, e.g. 1,2,4,8',
    }),
    requests: Flags.integer({
      min: 1,
      description: 'requests per level and repetition (default 20)',
      exclusive: ['duration'],
    }),
    duration: Flags.string({ description: 'run each level this long instead, e.g. 30s' }),
    rate: Flags.string({
      description: 'send this many requests per second (open loop) instead of keeping each level full',
    }),
    arrivals: Flags.string({
      options: ['poisson', 'constant'],
      default: 'poisson',
      description: 'gaps between arrivals with --rate',
    }),
    'prompt-tokens': Flags.integer({
      default: 128,
      min: 1,
      description: 'exact prompt length of synthetic prompts',
    }),
    'gen-tokens': Flags.integer({
      default: 64,
      min: 1,
      description: 'tokens to generate (EOS ignored on llama-server)',
    }),
    warmup: Flags.integer({
      default: 1,
      min: 0,
      description: 'unmeasured requests before each model and combination',
    }),
    repetitions: Flags.integer({
      default: 1,
      min: 1,
      description: 'repeat each level; the spread is the noise baselines use',
    }),
    set: Flags.string({
      multiple: true,
      description: 'sweep: key=v1,v2 over request options or (with --gguf) llama-server arguments',
    }),
    dataset: Flags.string({
      description: 'JSONL of {"prompt": ...} or {"messages": [...]} lines instead of synthetic prompts',
    }),
    'shared-prefix': Flags.integer({
      min: 1,
      description: 'tokens of a system prompt every request shares (prompt caching)',
    }),
    slo: Flags.string({ description: 'goodput limits, e.g. ttft=500ms,itl=50ms,e2e=5s' }),
    bandwidth: Flags.string({
      default: 'measure',
      description: 'memory bandwidth in GB/s for decode efficiency, or measure, or off',
    }),
    micro: Flags.boolean({
      default: false,
      description: 'llama-bench style pp/tg microbenchmarks from the engine’s own timings',
    }),
    'micro-tests': Flags.string({ default: 'pp512,tg128', description: 'microbenchmark tests' }),
    'llama-bench': Flags.boolean({
      default: true,
      allowNo: true,
      description: 'with --micro and --gguf, also run llama-bench for comparison',
    }),
    csv: Flags.string({ description: 'write the figures as CSV to this file' }),
    md: Flags.string({ description: 'write a Markdown report (also appended to $GITHUB_STEP_SUMMARY)' }),
    html: Flags.string({ description: 'write a self-contained HTML report with charts' }),
    baseline: Flags.string({ description: 'a previous `velo bench --json` result to compare with' }),
    result: Flags.string({
      description:
        'an earlier `velo bench --json` result to report on and compare with --baseline, instead of measuring',
      exclusive: ['url', 'gguf'],
    }),
    'fail-on-regression': Flags.integer({
      min: 0,
      description: 'exit 1 when a figure is this many percent worse than the baseline, beyond noise',
    }),
    timeout: Flags.string({ default: '5m', description: 'per-request timeout' }),
    seed: Flags.integer({ description: 'seed for prompts and arrivals (and sent to the server)' }),
    temperature: Flags.string({ description: 'sampling temperature sent with each request' }),
    config: configFlag,
  }

  async run(): Promise<BenchReport> {
    const { flags } = await this.parse(Bench)
    const progress = benchProgress()
    const controller = new AbortController()
    const interrupt = () => controller.abort()
    process.once('SIGINT', interrupt)
    try {
      const result = await benchFromCli(
        {
          url: flags.url,
          api: flags.api as 'ollama' | 'openai' | undefined,
          model: flags.model ?? [],
          gguf: flags.gguf,
          serverArgs: flags['server-args'],
          concurrency: flags.concurrency,
          requests: flags.requests,
          duration: flags.duration,
          rate: flags.rate,
          arrivals: flags.arrivals as 'poisson' | 'constant',
          promptTokens: flags['prompt-tokens'],
          genTokens: flags['gen-tokens'],
          warmup: flags.warmup,
          repetitions: flags.repetitions,
          set: flags.set ?? [],
          dataset: flags.dataset,
          sharedPrefix: flags['shared-prefix'],
          slo: flags.slo,
          bandwidth: flags.bandwidth,
          micro: flags.micro,
          microTests: flags['micro-tests'],
          llamaBench: flags['llama-bench'],
          csv: flags.csv,
          md: flags.md,
          html: flags.html,
          baseline: flags.baseline,
          result: flags.result,
          failOnRegression: flags['fail-on-regression'],
          timeout: flags.timeout,
          seed: flags.seed,
          temperature: flags.temperature,
          config: flags.config,
          signal: controller.signal,
        },
        (event) => progress.event(event),
      )
      progress.done(result.report.aborted ? `stopped: ${result.report.aborted.message}` : 'bench finished')
      if (!this.jsonEnabled()) this.log(renderTable(result.report))
      for (const file of result.written) this.logToStderr(`wrote ${file}`)
      if (result.regressions.length > 0 && flags['fail-on-regression'] !== undefined) {
        this.logToStderr(`velo: ${result.regressions.length} figure(s) regressed against ${flags.baseline}:`)
        for (const line of result.regressions) this.logToStderr(`  ${line}`)
      }
      if (result.report.aborted) {
        this.logToStderr(
          `velo: the run stopped early: ${result.report.aborted.message} (partial results kept)`,
        )
      }
      // Exit non-zero after printing the report (and its JSON), not instead of it.
      if (result.failed) process.exitCode = 1
      return result.report
    } finally {
      // A failed run ends the live view before its error prints.
      progress.close()
      process.removeListener('SIGINT', interrupt)
    }
  }
}
