import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { BenchReport, RepetitionFigures } from '../../src/core/bench/types.js'
import type { LlamaServer } from '../../src/core/engine/llama-server.js'
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
    '4',
    '--repetitions',
    '3',
    '--prompt-tokens',
    '40',
    '--gen-tokens',
    '12',
    '--bandwidth',
    'off',
  ]

  beforeAll(async () => {
    server = await startRigLlamaServer()
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
    expect(report.rows.map((row) => [row.concurrency, row.requests.completed, row.repetitions])).toEqual([
      [1, 12, 3],
      [2, 12, 3],
    ])
    for (const row of report.rows) {
      expect(row.tokens.output).toMatchObject({ min: 12, max: 12 })
      expect(row.perRepetition).toHaveLength(3)
    }
    await writeFile(baselineFile, stdout)
    // Progress went to stderr as plain lines (CI), the report to stdout.
    expect(stderr).toMatch(/velo-tiny c=2 rep 3\/3/)

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

  it('fails with exit 1 and names the figures when the baseline is much faster', async () => {
    const baseline = JSON.parse(await readFile(baselineFile, 'utf8')) as BenchReport
    const doctored = join(dir, 'doctored-fast.json')
    // Five times faster than this machine just measured: far beyond its run-to-run noise.
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

  it('passes when the baseline is slower, and prints the comparison in the JSON', async () => {
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

  it('rejects a baseline that is not a bench report before running', async () => {
    const wrong = join(dir, 'wrong.json')
    await writeFile(wrong, '{"hello": 1}')
    const { stderr, exitCode } = await velo([...common(), '--baseline', wrong, '--fail-on-regression', '5'])
    expect(exitCode).toBe(1)
    expect(stderr).toMatch(/velo: --baseline .*wrong\.json: not a velo bench report/)
    expect(existsSync(join(dir, 'never.csv'))).toBe(false)
  })

  it('measures velo itself in front of llama-server, detected as velo', async () => {
    const port = await freePort()
    const serve = spawnSupervised(process.execPath, [
      VELO_BIN,
      'serve',
      '--port',
      String(port),
      '--upstream',
      server.url,
      '--no-tui',
    ])
    try {
      const url = `http://127.0.0.1:${port}`
      await waitUntil(
        async () => {
          const response = await request(`${url}/health`)
          await response.body.dump()
          return response.statusCode === 200
        },
        { timeoutMs: 60_000, process: serve, what: 'velo serve' },
      )
      const { stdout, stderr, exitCode } = await velo([...common(), '--json'])
      expect(exitCode, stderr).toBe(0)
      const direct = JSON.parse(stdout) as BenchReport
      const proxied = await velo([...common().map((arg) => (arg === server.url ? url : arg)), '--json'])
      expect(proxied.exitCode, proxied.stderr).toBe(0)
      const report = JSON.parse(proxied.stdout) as BenchReport
      expect(report.target.kind).toBe('velo')
      expect(report.rows.map((row) => row.requests)).toEqual(direct.rows.map((row) => row.requests))
      for (const row of report.rows) {
        expect(row.requests.failed).toBe(0)
        // velo passes llama-server's usage and timings through.
        expect(Math.abs((row.tokens.prompt?.median ?? 0) - 40)).toBeLessThanOrEqual(1)
        expect(row.engine.generationTokensPerSec?.count).toBe(row.requests.completed)
      }
      const figures = (rows: BenchReport['rows']) =>
        rows.map(
          (row) =>
            `c=${row.concurrency} ${row.client.outputTokensPerSec.toFixed(0)} tok/s, TTFT p50 ${row.client.ttftMs?.median.toFixed(1)} ms`,
        )
      // For the reader: direct and through velo side by side (timings are not asserted).
      console.info(`[bench] direct: ${figures(direct.rows).join('; ')}`)
      console.info(`[bench] via velo: ${figures(report.rows).join('; ')}`)
    } finally {
      await serve.stop()
    }
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
