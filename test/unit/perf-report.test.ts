import { describe, expect, it } from 'vitest'
import {
  formatValue,
  infoRow,
  judge,
  markdownTable,
  TARGETS,
  type Target,
  tally,
  textTable,
} from '../../bench/lib/report.js'

const atMost: Target = { id: 'a', section: 1, metric: 'added', comparator: '<=', limit: 0.15, unit: 'ms' }
const atLeast: Target = { id: 'b', section: 1, metric: 'ratio', comparator: '>=', limit: 3, unit: 'x' }

describe('perf report', () => {
  it('has one target per line of the issue, each in a section 1-5', () => {
    expect(TARGETS).toHaveLength(10)
    expect(new Set(TARGETS.map((t) => t.id)).size).toBe(10)
    for (const target of TARGETS) expect([1, 2, 3, 4, 5]).toContain(target.section)
  })

  it('passes a value that meets the limit, equal included, and fails one that does not', () => {
    expect(judge(atMost, { kind: 'measured', value: 0.15 }).status).toBe('pass')
    expect(judge(atMost, { kind: 'measured', value: 0.151 }).status).toBe('FAIL')
    expect(judge(atLeast, { kind: 'measured', value: 3 }).status).toBe('pass')
    expect(judge(atLeast, { kind: 'measured', value: 2.99 }).status).toBe('FAIL')
  })

  it('fails a value that is not a number rather than passing it', () => {
    expect(judge(atMost, { kind: 'measured', value: Number.NaN }).status).toBe('FAIL')
  })

  it('carries pending, error and not-run outcomes with their reason', () => {
    expect(judge(atMost, { kind: 'pending', reason: 'needs serve' })).toMatchObject({
      status: 'pending',
      detail: 'needs serve',
      measured: '-',
    })
    expect(judge(atMost, { kind: 'error', reason: 'boom' })).toMatchObject({
      status: 'ERROR',
      detail: 'boom',
    })
    expect(judge(atMost, { kind: 'not-run' }).status).toBe('not run')
  })

  it('formats values in their unit', () => {
    expect(formatValue(0.1234, 'ms')).toBe('0.123 ms')
    expect(formatValue(15.34, 'ms')).toBe('15.3 ms')
    expect(formatValue(43.6, 'us')).toBe('44 us')
    expect(formatValue(3.214, 'x')).toBe('3.21x')
    expect(formatValue(11900.4, 'req/s')).toBe('11,900 req/s')
  })

  it('aligns text tables and escapes pipes in markdown', () => {
    const text = textTable(['a', 'bb'], [['long cell', 'x']])
    const lines = text.split('\n')
    expect(lines[0]).toBe('a          bb')
    expect(lines[1]).toBe('---------  --')
    expect(lines[2]).toBe('long cell  x')
    expect(markdownTable(['h'], [['a|b']])).toBe('| h |\n| --- |\n| a\\|b |')
  })

  it('counts outcomes of rows with a target, leaving out context rows', () => {
    const rows = [
      judge(atMost, { kind: 'measured', value: 0.1 }),
      judge(atLeast, { kind: 'measured', value: 1 }),
      judge(atLeast, { kind: 'pending', reason: 'later' }),
      infoRow(1, 'context', 2, 'x'),
    ]
    expect(tally(rows)).toBe('1 pass, 1 FAIL, 1 pending')
  })
})
