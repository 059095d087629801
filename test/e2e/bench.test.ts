import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runBench } from '../../src/core/bench/run.js'
import { median, robustSpread } from '../../src/core/bench/stats.js'
import type { BenchReport, BenchRow, RepetitionFigures } from '../../src/core/bench/types.js'
import type { LlamaServer } from '../../src/core/engine/llama-server.js'
import { ensureSynthModel } from '../../src/core/models/synth.js'
import { freePort, spawnSupervised, waitUntil } from '../../src/core/process/supervise.js'
import { VELO_BIN, velo } from '../helpers/cli.js'
import { lacks, startRigLlamaServer } from '../helpers/rig.js'

/** A copy of a report whose every figure is `factor` times better (throughput up, latency down). */
function doctor(report: BenchReport, factor: number): BenchReport {
  const better = (figures: RepetitionFigures): RepetitionFigures => {
    const scale = (value: number | undefined, higherIsBetter: boolean) =>
      value === undefined ? undefined : higherIsBetter ? value * factor : value / factor
    return {
      requestsPerSec: figures.requestsPerSec * factor,
      outputTokensPerSec: figures.outputTokensPerSec * factor,
      totalTokensPerSec: figures.totalTokensPerSec * factor,
      ttftMedianMs: scale(figures.ttftMedianMs, false),
      itlMedianMs: scale(figures.itlMedianMs, false),
      tpotMedianMs: scale(figures.tpotMedianMs, false),
      e2eMedianMs: scale(figures.e2eMedianMs, false),
      engineGenerationTokensPerSec: scale(figures.engineGenerationTokensPerSec, true),
      enginePromptTokensPerSec: scale(figures.enginePromptTokensPerSec, true),
      goodputPerSec: scale(figures.goodputPerSec, true),
    }
  }
  return {
    ...report,
    rows: report.rows.map((row) => ({ ...row, perRepetition: row.perRepetition.map(better) })),
  }
}

describe('velo bench (CLI)', () => {
  it('rejects bad input with a one-line cause naming the flag, not a stack trace', async () => {
    const { stderr, exitCode } = await velo(['bench', '--url', 'http://127.0.0.1:9', '--concurrency', '0,x'])
    expect(exitCode).toBe(1)
    expect(stderr).toMatch(/velo: --concurrency: expected positive integers like 1,2,4, got "0,x"/)
    expect(stderr).not.toMatch(/at .*\.js:\d+/)
  })

  it('says that a target which is down cannot be reached', async () => {
    const { stderr, exitCode } = await velo(['bench', '--url', 'http://127.0.0.1:9', '--bandwidth', 'off'])
    expect(exitCode).toBe(1)
    expect(stderr).toMatch(/velo: cannot reach http:\/\/127\.0\.0\.1:9 \(ECONNREFUSED\)/)
    expect(stderr).toContain('suggestion:')
    expect(stderr).not.toMatch(/at .*\.js:\d+/)
  })
})

describe.skipIf(lacks('llama-server'))('velo bench (CLI) against llama-server', () => {
  let server: LlamaServer
  let dir: string
  let baselineFile: string
  const common = () => [
    'bench',
    '--url',
    server.url,
    '--concurrency',
    '1,2',
    '--requests',
    '6',
    '--repetitions',
    '5',
    '--prompt-tokens',
    '40',
    '--gen-tokens',
    '12',
    '--bandwidth',
    'off',
  ]

  beforeAll(async () => {
    // One thread: on a busy 2-core machine a server spinning on both cores slows to a crawl.
    server = await startRigLlamaServer({ args: ['--threads', '1'] })
    dir = await mkdtemp(join(tmpdir(), 'velo-bench-cli-'))
    baselineFile = join(dir, 'baseline.json')
  })
  afterAll(async () => {
    await server?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('prints the JSON report and writes CSV, Markdown and HTML files', async () => {
    const summary = join(dir, 'step-summary.md')
    await writeFile(summary, '# earlier step\n')
    const files = { csv: join(dir, 'out.csv'), md: join(dir, 'out.md'), html: join(dir, 'out.html') }
    const { stdout, stderr, exitCode } = await velo(
      [...common(), '--json', '--csv', files.csv, '--md', files.md, '--html', files.html],
      { env: { ...process.env, GITHUB_STEP_SUMMARY: summary, CI: 'true' } },
    )
    expect(exitCode, stderr).toBe(0)
    const report = JSON.parse(stdout) as BenchReport
    expect(report.schema).toBe('velo.bench/1')
    const errors = JSON.stringify(report.rows.map((row) => row.errors))
    expect(
      report.rows.map((row) => [row.concurrency, row.requests.completed, row.repetitions]),
      errors,
    ).toEqual([
      [1, 30, 5],
      [2, 30, 5],
    ])
    for (const row of report.rows) {
      expect(row.tokens.output).toMatchObject({ min: 12, max: 12 })
      expect(row.perRepetition).toHaveLength(5)
    }
    await writeFile(baselineFile, stdout)
    // Progress went to stderr as plain lines (CI), the report to stdout.
    expect(stderr).toMatch(/velo-tiny c=2 rep 5\/5/)

    const csv = (await readFile(files.csv, 'utf8')).trim().split('\n')
    expect(csv).toHaveLength(3)
    expect(csv[0]).toMatch(/^model,params,concurrency,/)
    const markdown = await readFile(files.md, 'utf8')
    expect(markdown).toMatch(/^## velo bench/)
    expect(markdown).toContain('| velo-tiny | - | 2 |')
    expect(await readFile(summary, 'utf8')).toBe(`# earlier step\n${markdown}\n`)
    const html = await readFile(files.html, 'utf8')
    expect(html).toMatch(/^<!doctype html>/)
    for (const chart of ['throughput', 'ttft-percentiles', 'ttft-histogram-0'])
      expect(html).toContain(`data-chart="${chart}"`)
  })

  it('fails a measured run with exit 1 and names the figures when the baseline is five times faster', async () => {
    const baseline = JSON.parse(await readFile(baselineFile, 'utf8')) as BenchReport
    const doctored = join(dir, 'doctored-fast.json')
    // Far beyond any drift between two runs on a busy machine, so the fresh run surely regressed.
    await writeFile(doctored, JSON.stringify(doctor(baseline, 5)))
    const md = join(dir, 'regressed.md')
    const { stdout, stderr, exitCode } = await velo([
      ...common(),
      '--baseline',
      doctored,
      '--fail-on-regression',
      '20',
      '--md',
      md,
    ])
    expect(exitCode).toBe(1)
    expect(stderr).toMatch(/velo: \d+ figure\(s\) regressed against .*doctored-fast\.json/)
    expect(stderr).toMatch(
      / {2}velo-tiny c=[12]: [a-zA-Z/ ]+ [\d.]+ vs [\d.]+ \([\d.]+% worse; threshold 20%, noise ±[\d.]+%\)/,
    )
    // The report is still printed and written.
    expect(stdout).toContain('regression(s):')
    expect(await readFile(md, 'utf8')).toContain('**Regressions**')
  })

  it('passes a measured run when the baseline is slower, and prints the comparison in the JSON', async () => {
    const baseline = JSON.parse(await readFile(baselineFile, 'utf8')) as BenchReport
    const doctored = join(dir, 'doctored-slow.json')
    await writeFile(doctored, JSON.stringify(doctor(baseline, 1 / 5)))
    const { stdout, stderr, exitCode } = await velo([
      ...common(),
      '--baseline',
      doctored,
      '--fail-on-regression',
      '20',
      '--json',
    ])
    expect(exitCode, stderr).toBe(0)
    const report = JSON.parse(stdout) as BenchReport
    expect(report.comparison?.regressions).toEqual([])
    expect(report.comparison?.figures.length).toBeGreaterThan(0)
  })

  /*
   * The exact 20% case compares a measured result (--result) with a baseline made from it: a fresh
   * run on a shared 2-core machine drifts from an earlier one by more than 20% at times (measured:
   * up to 66% on requests/s), so only the same measurement can show that 20% fails and 0% passes.
   */
  it('fails with exit 1 and names the figures when the baseline is exactly 20% better than the result', async () => {
    const better = join(dir, 'better-20.json')
    const measured = JSON.parse(await readFile(baselineFile, 'utf8')) as BenchReport
    // Throughput x1.2, latencies /1.2: 16.7% and 20% worse than the baseline, beyond the default 10%.
    await writeFile(better, JSON.stringify(doctor(measured, 1.2)))
    const md = join(dir, 'regressed-20.md')
    const { stdout, stderr, exitCode } = await velo([
      'bench',
      '--result',
      baselineFile,
      '--baseline',
      better,
      '--fail-on-regression',
      '10',
      '--md',
      md,
    ])
    expect(exitCode).toBe(1)
    expect(stderr).toMatch(/velo: \d+ figure\(s\) regressed against .*better-20\.json/)
    const named = stderr.split('\n').filter((line) => /^ {2}velo-tiny c=[12]: /.test(line))
    expect(named.length).toBeGreaterThan(0)
    for (const line of named) {
      expect(line).toMatch(
        /: [\w/ ]+ [\d.]+ vs [\d.]+ \((16\.7|20\.0)% worse; threshold 10%, noise ±[\d.]+%\)/,
      )
    }
    expect(stdout).toContain('regression(s):')
    expect(await readFile(md, 'utf8')).toContain('**Regressions**')
  })

  it('passes when the baseline is the same result', async () => {
    const { stdout, stderr, exitCode } = await velo([
      'bench',
      '--result',
      baselineFile,
      '--baseline',
      baselineFile,
      '--fail-on-regression',
      '10',
      '--json',
    ])
    expect(exitCode, stderr).toBe(0)
    const report = JSON.parse(stdout) as BenchReport
    expect(report.comparison?.regressions).toEqual([])
    expect(report.comparison?.figures.length).toBeGreaterThan(0)
    for (const figure of report.comparison?.figures ?? []) expect(figure.worsePct).toBe(0)
  })

  it('refuses --result together with a server to measure', async () => {
    const { stderr, exitCode } = await velo(['bench', '--result', baselineFile, '--url', server.url])
    expect(exitCode).not.toBe(0)
    expect(stderr).toMatch(/--result|--url/)
    expect(stderr).not.toMatch(/at .*\.js:\d+/)
  })

  it('rejects a baseline that is not a bench report before running', async () => {
    const wrong = join(dir, 'wrong.json')
    await writeFile(wrong, '{"hello": 1}')
    const { stderr, exitCode } = await velo([...common(), '--baseline', wrong, '--fail-on-regression', '5'])
    expect(exitCode).toBe(1)
    expect(stderr).toMatch(/velo: --baseline .*wrong\.json: not a velo bench report/)
    expect(existsSync(join(dir, 'never.csv'))).toBe(false)
  })

  it('sweeps a request option into one row per value in the table', async () => {
    const { stdout, exitCode, stderr } = await velo([
      'bench',
      '--url',
      server.url,
      '--requests',
      '2',
      '--gen-tokens',
      '4',
      '--set',
      'top_k=5,50',
      '--bandwidth',
      'off',
    ])
    expect(exitCode, stderr).toBe(0)
    expect(stdout).toContain('top_k=5')
    expect(stdout).toContain('top_k=50')
    expect(stdout).toContain('TTFT ms p50/p99')
  })
})

/** A figure of the row at `concurrency` (its only repetition). */
function figureOf(report: BenchReport, concurrency: number, key: keyof RepetitionFigures): number {
  const value = report.rows.find((row: BenchRow) => row.concurrency === concurrency)?.perRepetition[0]?.[key]
  if (value === undefined) throw new Error(`no ${key} at c=${concurrency}`)
  return value
}

/** Rounds of one direct and one proxied run, back to back (order alternating). */
const ROUNDS = 8

/**
 * Issue 6: against velo itself the figures agree with the direct run within noise. velo serve (the
 * built CLI) runs in front of llama-server with the small synthetic model on one thread, so the proxy
 * and the client have a core beside the engine. Direct and proxied runs alternate, round after round,
 * and each figure is compared within a round (proxied / direct), so a change in the machine's load
 * between rounds cancels out. A figure agrees within noise when the median of those ratios is within
 * three times their own spread (median absolute deviation, scaled) of 1: the band comes from the
 * rounds themselves, not from a fixed number. Counts must match exactly. The prompt (128 tokens) makes
 * the hop through velo, a few milliseconds, small beside the time to first token, as it is for real
 * models. ITL is not compared: velo re-sends the stream, and how pieces group into network reads (which
 * ITL splits gaps by) is the proxy's; TPOT covers the same time per token without that. The runs use
 * runBench in this process, which is what `velo bench` runs, to keep each round short.
 */
describe.skipIf(lacks('llama-server'))('velo bench against velo itself (small synthetic model)', () => {
  let server: LlamaServer
  let serve: ReturnType<typeof spawnSupervised> | undefined
  let url: string
  beforeAll(async () => {
    server = await startRigLlamaServer({
      model: await ensureSynthModel('small'),
      alias: 'velo-small',
      args: ['--threads', '1'],
    })
    const port = await freePort()
    url = `http://127.0.0.1:${port}`
    serve = spawnSupervised(process.execPath, [
      VELO_BIN,
      'serve',
      '--port',
      String(port),
      '--upstream',
      server.url,
      '--no-tui',
    ])
    const proxy = serve
    await waitUntil(
      async () => {
        const response = await request(`${url}/health`)
        await response.body.dump()
        return response.statusCode === 200
      },
      { timeoutMs: 60_000, process: proxy, what: 'velo serve' },
    )
  }, 120_000)
  afterAll(async () => {
    await serve?.stop()
    await server?.stop()
  })

  it('measures the same figures through velo as directly, within the rounds’ noise', async () => {
    const run = (target: string) =>
      runBench({
        url: target,
        models: [],
        concurrency: [1, 2],
        requests: 4,
        promptTokens: 128,
        genTokens: 16,
        warmup: 1,
        repetitions: 1,
        sweep: [],
        bandwidth: 'off',
      })
    const direct: BenchReport[] = []
    const proxied: BenchReport[] = []
    for (let round = 0; round < ROUNDS; round += 1) {
      if (round % 2 === 0) direct.push(await run(server.url))
      proxied.push(await run(url))
      if (round % 2 === 1) direct.push(await run(server.url))
    }

    for (const [index, report] of proxied.entries()) {
      expect(report.target.kind).toBe('velo')
      expect(report.aborted).toBeUndefined()
      const alone = direct[index]
      expect(report.rows.map((row) => row.requests)).toEqual(alone?.rows.map((row) => row.requests))
      for (const row of report.rows) {
        expect(row.requests.failed).toBe(0)
        // velo passes llama-server's usage and timings through: the same prompt length, and the
        // engine's own timings for every request.
        expect(Math.abs((row.tokens.prompt?.median ?? 0) - 128)).toBeLessThanOrEqual(1)
        expect(row.engine.generationTokensPerSec?.count).toBe(row.requests.completed)
        expect(row.engine.promptTokensPerSec?.count).toBe(row.requests.completed)
        // Through velo bench cannot send llama-server's ignore_eos, so a request may stop early.
        expect(row.tokens.output?.max).toBeLessThanOrEqual(16)
      }
      for (const row of alone?.rows ?? []) expect(row.tokens.output).toMatchObject({ min: 16, max: 16 })
    }

    const figures: (keyof RepetitionFigures)[] = [
      'requestsPerSec',
      'outputTokensPerSec',
      'ttftMedianMs',
      'tpotMedianMs',
      'e2eMedianMs',
      'engineGenerationTokensPerSec',
      'enginePromptTokensPerSec',
    ]
    const lines: string[] = []
    const outside: string[] = []
    for (const concurrency of [1, 2]) {
      for (const figure of figures) {
        const ratios = proxied.map(
          (report, index) =>
            figureOf(report, concurrency, figure) / figureOf(direct[index] ?? report, concurrency, figure),
        )
        const ratio = median(ratios)
        const band = 3 * robustSpread(ratios)
        const line = `c=${concurrency} ${figure}: via velo / direct ${ratio.toFixed(3)} (band ±${band.toFixed(3)})`
        lines.push(line)
        if (Math.abs(ratio - 1) > band) outside.push(line)
      }
    }
    console.info(
      `[bench] through velo against direct, median of ${ROUNDS} paired rounds:\n  ${lines.join('\n  ')}`,
    )
    expect(outside).toEqual([])
  }, 600_000)
})
