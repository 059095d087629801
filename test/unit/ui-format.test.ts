import { describe, expect, it } from 'vitest'
import {
  fitCell,
  formatBytes,
  formatMs,
  formatPercent,
  formatRate,
  formatTtft,
  formatUptime,
  sparkline,
} from '../../src/ui/format.js'
import { modelColumns, recentColumns, scrollOffset, sectionRows } from '../../src/ui/layout.js'

describe('format', () => {
  it('renders uptime with its two largest units', () => {
    expect(formatUptime(59)).toBe('59s')
    expect(formatUptime(725)).toBe('12m05s')
    expect(formatUptime(3725)).toBe('1h02m')
    expect(formatUptime(183_600)).toBe('2d03h')
  })

  it('keeps rates within five characters', () => {
    expect([0, -1, Number.NaN, 3.25, 10, 154.4, 1234, 12_345, 999_999, 1_250_000].map(formatRate)).toEqual([
      '0',
      '0',
      '0',
      '3.3',
      '10',
      '154',
      '1.23k',
      '12k',
      '1000k',
      '1.3M',
    ])
  })

  it('renders times and TTFT pairs', () => {
    expect(formatMs(undefined)).toBe('-')
    expect(formatMs(850)).toBe('850ms')
    expect(formatMs(1234)).toBe('1.2s')
    expect(formatMs(42_000)).toBe('42s')
    expect(formatMs(190_000)).toBe('3m10s')
    expect(formatTtft(undefined, undefined)).toBe('-')
    expect(formatTtft(120, 480)).toBe('120/480ms')
    expect(formatTtft(800, 2400)).toBe('0.8/2.4s')
    expect(formatTtft(120, undefined)).toBe('120/-ms')
  })

  it('renders percentages and sizes', () => {
    expect(formatPercent(0.421)).toBe('42%')
    expect(formatPercent(2)).toBe('100%')
    expect(formatBytes(512)).toBe('512B')
    expect(formatBytes(1536)).toBe('1.5KiB')
    expect(formatBytes(256 * 1024 ** 2)).toBe('256MiB')
  })

  it('draws a sparkline scaled to its peak, newest on the right, padded when short', () => {
    expect(sparkline([0, 1, 2, 4, 8], 5)).toBe('▁▂▃▅█')
    expect(sparkline([8], 4)).toBe('   █')
    expect(sparkline([0, 0, 0], 3)).toBe('▁▁▁')
    expect(sparkline([1, 2, 3, 4, 5, 6], 3)).toBe('▆▇█')
    expect(sparkline([1, 2], 0)).toBe('')
  })

  it('fits cells to their width', () => {
    expect(fitCell('velo-tiny', 12)).toBe('velo-tiny   ')
    expect(fitCell('42', 5, 'right')).toBe('   42')
    expect(fitCell('velo-tiny@cpu-8c', 10)).toBe('velo-tiny…')
    expect(fitCell('x', 0)).toBe('')
  })
})

describe('layout', () => {
  it('keeps every table row inside the terminal width', () => {
    for (const width of [80, 81, 99, 100, 110, 120, 139, 140, 160, 240]) {
      const models = modelColumns(width)
      expect(2 + models.reduce((sum, c) => sum + c.width + 1, 0) - 1).toBeLessThan(width)
      const recent = recentColumns(width)
      expect(recent.reduce((sum, c) => sum + c.width + 1, 0) - 1).toBeLessThan(width)
    }
  })

  it('spends 23 lines of an 80x24 terminal without going over', () => {
    for (const counts of [
      { models: 0, recent: 0, upstreams: 0, errors: 0 },
      { models: 3, recent: 50, upstreams: 2, errors: 1 },
      { models: 40, recent: 50, upstreams: 10, errors: 20 },
    ]) {
      const rows = sectionRows(23, 80, counts)
      expect(rows.sideBySide).toBe(false)
      expect(10 + Math.max(1, rows.models) + rows.recent + rows.health).toBeLessThanOrEqual(23)
    }
  })

  it('scrolls so the selection stays in view', () => {
    expect(scrollOffset(0, 3, 5)).toBe(0)
    expect(scrollOffset(0, 20, 5)).toBe(0)
    expect(scrollOffset(10, 20, 5)).toBe(8)
    expect(scrollOffset(19, 20, 5)).toBe(15)
  })
})
