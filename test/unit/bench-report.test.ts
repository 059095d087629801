import { describe, expect, it } from 'vitest'
import { compareReports } from '../../src/core/bench/compare.js'
import { renderCsv, renderHtml, renderMarkdown, renderTable } from '../../src/core/bench/report/index.js'
import type { MicroResult } from '../../src/core/bench/types.js'
import { report, rowAt } from './bench-fixtures.js'

const rows = [rowAt('velo-tiny', 1, [1, 1]), rowAt('velo-tiny', 2, [2, 2])]

describe('bench reports', () => {
  it('writes one CSV line per row with a stable header', () => {
    const lines = renderCsv(report(rows)).trim().split('\n')
    expect(lines).toHaveLength(3)
    const header = lines[0]?.split(',') ?? []
    expect(header.slice(0, 3)).toEqual(['model', 'params', 'concurrency'])
    for (const column of [
      'ttft_ms_p99',
      'itl_ms_median',
      'e2e_ms_p90',
      'output_tokens_per_s',
      'engine_generation_tokens_per_s_median',
    ]) {
      expect(header).toContain(column)
    }
    const second = lines[2]?.split(',') ?? []
    expect(second[header.indexOf('concurrency')]).toBe('2')
    expect(second[header.indexOf('e2e_ms_median')]).toBe('2000')
    expect(lines.every((line) => line.split(',').length === header.length)).toBe(true)
  })

  it('quotes CSV cells that hold commas', () => {
    const row = { ...rowAt('m', 1, [1]), errors: [{ message: 'bad, very', count: 2 }] }
    expect(renderCsv(report([row]))).toContain('"2x bad, very"')
  })

  it('writes micro results as CSV in --micro mode', () => {
    const micro: MicroResult = {
      test: 'tg128',
      kind: 'tg',
      tokens: 128,
      source: 'engine',
      model: 'm',
      params: {},
      threads: 2,
      tokensPerSec: 100,
      stddev: 1,
      samples: [99, 101],
    }
    const csv = renderCsv({ ...report([]), micro: [micro] })
    expect(csv.split('\n')[0]).toBe('model,params,test,source,threads,tokens_per_s,stddev,samples')
    expect(csv).toContain('m,,tg128,engine,2,100,1,99.00 101.00')
  })

  it('renders Markdown tables with the target, machine and any regressions', () => {
    const baseline = report([rowAt('velo-tiny', 1, [0.5, 0.5]), rowAt('velo-tiny', 2, [2, 2])])
    const current = report(rows)
    current.comparison = compareReports(current, baseline, 10, 'base.json')
    const markdown = renderMarkdown(current)
    expect(markdown).toMatch(/^## velo bench/)
    expect(markdown).toContain('| model | params | c |')
    expect(markdown).toContain('llama-server b1 at http://127.0.0.1:1')
    expect(markdown).toContain('**Regressions** against base.json')
    expect(markdown).toMatch(/- velo-tiny c=1: output tok\/s/)
  })

  it('renders a terminal table and says when a run stopped early', () => {
    const stopped = {
      ...report(rows),
      aborted: { code: 'VELO_UPSTREAM_UNREACHABLE', message: 'cannot reach x' },
    }
    const text = renderTable(stopped)
    expect(text).toContain('TTFT ms p50/p99')
    expect(text).toContain('engine tg t/s')
    expect(text).toContain('stopped early: cannot reach x')
  })

  it('makes one self-contained HTML page with its charts', () => {
    const html = renderHtml(report(rows))
    expect(html).toMatch(/^<!doctype html>/)
    // Nothing is fetched from elsewhere.
    expect(html).not.toMatch(
      /<script[^>]+src=|<link[^>]+href=|https?:\/\/(?!www\.w3\.org\/2000\/svg|127\.0\.0\.1)/,
    )
    for (const chart of [
      'throughput',
      'requests',
      'ttft-percentiles',
      'e2e-percentiles',
      'itl-percentiles',
      'ttft-histogram-0',
    ]) {
      expect(html).toContain(`data-chart="${chart}"`)
    }
    expect(html.match(/<svg /g)?.length).toBeGreaterThanOrEqual(7)
    // Throughput line through both concurrency levels; bars for p50/p90/p99.
    expect(html).toMatch(/<polyline [^>]*points="[\d.]+,[\d.]+ [\d.]+,[\d.]+"/)
    expect(html.match(/<rect /g)?.length).toBeGreaterThan(6)
    const embedded = /<script type="application\/json" id="velo-bench-report">(.*)<\/script>/s.exec(html)?.[1]
    expect(JSON.parse(embedded ?? '').rows).toHaveLength(2)
  })

  it('escapes names in HTML', () => {
    const html = renderHtml(report([rowAt('<img src=x>', 1, [1])]))
    expect(html).not.toContain('<img src=x>')
    expect(html).toContain('&#60;img src=x&#62;')
  })
})
