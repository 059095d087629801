import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { type BrowserContext, chromium, type Locator } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LlamaServerClient } from '../../src/core/backends/llama-server.js'
import { runMicroBench } from '../../src/core/bench/micro.js'
import { renderHtml } from '../../src/core/bench/report/index.js'
import { runBench } from '../../src/core/bench/run.js'
import type { BenchReport, BenchRow, Summary } from '../../src/core/bench/types.js'
import type { LlamaServer } from '../../src/core/engine/llama-server.js'
import { lacks, required, rig, startRigLlamaServer } from '../helpers/rig.js'

/** What the browser laid out for one chart: its SVG's box and its data marks with a non-zero box. */
interface RenderedChart {
  id: string
  width: number
  height: number
  lines: number
  points: number
  bars: number
}

/** How many of the located SVG marks the browser laid out with a box that passes `drawn`. */
async function countDrawn(
  marks: Locator,
  drawn: (box: { width: number; height: number }) => boolean,
): Promise<number> {
  let count = 0
  for (const mark of await marks.all()) {
    const box = await mark.boundingBox()
    if (box && drawn(box)) count += 1
  }
  return count
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])

describe.skipIf(lacks('llama-server') || lacks('chromium'))(
  'velo bench --html in headless Chromium (report from the rig’s llama-server)',
  () => {
    let server: LlamaServer
    let dir: string
    let context: BrowserContext | undefined
    let report: BenchReport
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'velo-bench-html-'))
      server = await startRigLlamaServer()
      report = await runBench({
        models: [],
        url: `${server.url}/v1`,
        concurrency: [1, 2],
        requests: 4,
        promptTokens: 64,
        // Enough tokens that the stream spans several reads even on a fast machine.
        genTokens: 32,
        warmup: 1,
        repetitions: 1,
        sweep: [],
        bandwidth: 'off',
      })
      const client = new LlamaServerClient(server.url)
      try {
        // The microbenchmark chart too: the same report can hold both.
        report.micro = await runMicroBench({
          client,
          model: 'velo-tiny',
          promptTokens: [64],
          genTokens: [8],
          repetitions: 1,
        })
      } finally {
        await client.close()
      }
      context = await chromium.launchPersistentContext(join(dir, 'profile'), {
        executablePath: required(rig().chromium, 'chromium'),
        headless: true,
        viewport: { width: 1280, height: 900 },
        args: [
          '--headless',
          '--no-sandbox',
          '--disable-gpu',
          '--disable-quic',
          '--no-first-run',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
        ],
      })
    }, 180_000)
    afterAll(async () => {
      await context?.close()
      await server?.stop()
      if (dir) await rm(dir, { recursive: true, force: true })
    })

    it('renders every chart with visible data and takes a non-empty screenshot', async () => {
      expect(
        report.rows.map((row) => [row.concurrency, row.requests.completed]),
        JSON.stringify(report.rows.map((row) => row.errors)),
      ).toEqual([
        [1, 4],
        [2, 4],
      ])
      const file = join(dir, 'report.html')
      await writeFile(file, renderHtml(report))
      const page = await required(context, 'chromium').newPage()
      const requested: string[] = []
      page.on('request', (request) => requested.push(request.url()))
      await page.goto(pathToFileURL(file).href, { waitUntil: 'load' })

      const charts: RenderedChart[] = []
      for (const figure of await page.locator('figure.chart').all()) {
        const box = await figure.locator('svg').boundingBox()
        charts.push({
          id: (await figure.getAttribute('data-chart')) ?? '',
          width: box?.width ?? 0,
          height: box?.height ?? 0,
          lines: await countDrawn(figure.locator('polyline'), (mark) => mark.width > 0 || mark.height > 0),
          points: await countDrawn(figure.locator('circle'), (mark) => mark.width > 0 && mark.height > 0),
          // A bar is drawn when it has both a width and a height (an empty bucket has no height).
          bars: await countDrawn(figure.locator('rect'), (mark) => mark.width > 0 && mark.height > 0),
        })
      }
      const byId = new Map<string, RenderedChart>(charts.map((chart) => [chart.id, chart]))
      expect([...byId.keys()]).toEqual([
        'throughput',
        'requests',
        'ttft-percentiles',
        'e2e-percentiles',
        'itl-percentiles',
        'ttft-histogram-0',
        'ttft-histogram-1',
        'micro',
      ])
      for (const chart of charts) {
        expect(chart.width, chart.id).toBeGreaterThan(100)
        expect(chart.height, chart.id).toBeGreaterThan(100)
      }
      // One line per model, one point per concurrency level.
      for (const id of ['throughput', 'requests']) expect(byId.get(id)).toMatchObject({ lines: 1, points: 2 })
      // p50/p90/p99 for each of the two levels: a bar for each percentile above zero (two tokens
      // that arrive in one read make an inter-token gap of 0 ms, which draws no bar).
      const percentileCharts: [string, (row: BenchRow) => Summary | undefined][] = [
        ['ttft-percentiles', (row) => row.client.ttftMs],
        ['e2e-percentiles', (row) => row.client.e2eMs],
        ['itl-percentiles', (row) => row.client.itlMs],
      ]
      for (const [id, pick] of percentileCharts) {
        const values = report.rows.flatMap((row) => {
          const summary = pick(row)
          return summary ? [summary.median, summary.p90, summary.p99] : []
        })
        expect(values, id).toHaveLength(6)
        // Between the bars tall enough to see at any rounding (over 1% of the tallest) and every
        // non-zero one.
        const largest = Math.max(...values)
        const clear = values.filter((value) => value > largest / 100).length
        const nonZero = values.filter((value) => value > 0).length
        // A fast machine can deliver a whole stream in one read: every gap 0 ms, so no bar at all.
        if (id === 'itl-percentiles' && nonZero === 0) {
          expect(byId.get(id)?.bars, id).toBe(0)
          continue
        }
        expect(clear, id).toBeGreaterThan(0)
        expect(byId.get(id)?.bars, id).toBeGreaterThanOrEqual(clear)
        expect(byId.get(id)?.bars, id).toBeLessThanOrEqual(nonZero)
      }
      for (const id of ['ttft-histogram-0', 'ttft-histogram-1'])
        expect(byId.get(id)?.bars, id).toBeGreaterThan(0)
      expect(byId.get('micro')?.bars).toBeGreaterThan(0)
      // Self-contained: the page asked for nothing but itself.
      expect(requested).toEqual([pathToFileURL(file).href])

      const screenshot = join(dir, 'report.png')
      await page.screenshot({ path: screenshot, fullPage: true })
      const png = await readFile(screenshot)
      expect((await stat(screenshot)).size).toBeGreaterThan(10_000)
      expect(png.subarray(0, 8).equals(PNG_SIGNATURE)).toBe(true)
      // IHDR: width and height of the full page, at least the viewport.
      expect(png.readUInt32BE(16)).toBe(1280)
      expect(png.readUInt32BE(20)).toBeGreaterThanOrEqual(900)
      await page.close()
    }, 120_000)
  },
)
