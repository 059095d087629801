import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  compareFigure,
  compareReports,
  describeRegressions,
  loadBaseline,
} from '../../src/core/bench/compare.js'
import { VeloError } from '../../src/core/errors.js'
import { report, rowAt } from './bench-fixtures.js'

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'velo-bench-compare-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('baseline comparison', () => {
  it('passes a run compared with itself', () => {
    const current = report([rowAt('m', 1, [1, 1.1, 0.9]), rowAt('m', 2, [2, 2, 2.1])])
    const comparison = compareReports(current, current, 5)
    expect(comparison.regressions).toEqual([])
    expect(comparison.figures.length).toBeGreaterThan(0)
    for (const figure of comparison.figures) expect(figure.worsePct).toBe(0)
  })

  it('fails figures that are worse beyond the threshold and names them', () => {
    const baseline = report([rowAt('m', 1, [1, 1, 1])])
    const current = report([rowAt('m', 1, [1.5, 1.5, 1.5])])
    const comparison = compareReports(current, baseline, 10, 'main.json')
    const names = comparison.regressions.map((figure) => figure.figure)
    expect(names).toContain('output tok/s')
    expect(names).toContain('e2e median ms')
    const e2e = comparison.regressions.find((figure) => figure.figure === 'e2e median ms')
    expect(e2e).toMatchObject({ row: 'm c=1', baseline: 1000, current: 1500, worsePct: 50, regressed: true })
    expect(describeRegressions(comparison).join('\n')).toMatch(
      /m c=1: e2e median ms 1500 vs 1000 \(50\.0% worse; threshold 10%/,
    )
  })

  it('does not fail on a difference inside the repetitions’ noise', () => {
    // Spread of ±40% across repetitions: a 20% worse median is noise.
    const result = compareFigure('row', 'tok/s', 'higher', [60, 100, 140], [40, 80, 120], 10)
    expect(result?.worsePct).toBeCloseTo(20)
    expect(result?.noisePct).toBeGreaterThan(10)
    expect(result?.regressed).toBe(false)
    // The same drop with tight repetitions is a regression.
    expect(compareFigure('row', 'tok/s', 'higher', [99, 100, 101], [79, 80, 81], 10)?.regressed).toBe(true)
  })

  it('is not moved by one noisy repetition, since it compares medians', () => {
    const result = compareFigure('row', 'ms', 'lower', [100, 101, 99], [100, 300, 101], 10)
    expect(result?.regressed).toBe(false)
  })

  it('does not let one noisy repetition hide a regression by inflating the noise', () => {
    // Four tight repetitions and one wild one: 20% slower is still a regression.
    const baseline = [100, 101, 99, 100, 30]
    const current = [80, 81, 79, 80, 160]
    const result = compareFigure('row', 'tok/s', 'higher', baseline, current, 10)
    expect(result?.worsePct).toBeCloseTo(20)
    expect(result?.noisePct).toBeLessThan(3)
    expect(result?.regressed).toBe(true)
  })

  it('fails a baseline exactly 20% better at the default 10% threshold, and passes the same result', () => {
    // Throughput x1.2 and latency /1.2: 16.7% and 20% worse than the baseline.
    const measured = report([rowAt('m', 1, [1, 1.04, 0.97, 1.02, 0.99]), rowAt('m', 2, [2, 2.1, 1.95])])
    const better = report(
      measured.rows.map((row) => ({
        ...row,
        perRepetition: row.perRepetition.map((figures) => ({
          ...figures,
          outputTokensPerSec: figures.outputTokensPerSec * 1.2,
          e2eMedianMs: (figures.e2eMedianMs ?? 0) / 1.2,
        })),
      })),
    )
    const failed = compareReports(measured, better, 10)
    expect(failed.regressions.map((figure) => `${figure.row} ${figure.figure}`).sort()).toEqual([
      'm c=1 e2e median ms',
      'm c=1 output tok/s',
      'm c=2 e2e median ms',
      'm c=2 output tok/s',
    ])
    const tokens = failed.regressions.find((figure) => figure.figure === 'output tok/s')
    expect(tokens?.worsePct).toBeCloseTo(16.67, 1)
    expect(compareReports(measured, measured, 10).regressions).toEqual([])
  })

  it('lists rows of the baseline that were not measured', () => {
    const comparison = compareReports(
      report([rowAt('m', 1, [1])]),
      report([rowAt('m', 1, [1]), rowAt('m', 4, [1])]),
      10,
    )
    expect(comparison.missing).toEqual(['m c=4'])
  })

  it('reads a baseline file and rejects one that is not a bench report', async () => {
    const good = join(dir, 'good.json')
    await writeFile(good, JSON.stringify(report([rowAt('m', 1, [1])])))
    expect((await loadBaseline(good)).rows).toHaveLength(1)
    const wrong = join(dir, 'wrong.json')
    await writeFile(wrong, JSON.stringify({ rows: [] }))
    await expect(loadBaseline(wrong)).rejects.toThrow(/not a velo bench report/)
    const broken = join(dir, 'broken.json')
    await writeFile(broken, '{')
    await expect(loadBaseline(broken)).rejects.toThrow(/not valid JSON/)
    await expect(loadBaseline(join(dir, 'missing.json'))).rejects.toBeInstanceOf(VeloError)
  })
})
