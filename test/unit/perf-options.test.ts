import { describe, expect, it } from 'vitest'
import { parseOptions } from '../../bench/lib/options.js'

const defaults = { tmpdir: '/tmp', now: new Date('2026-01-02T03:04:05.678Z') }

describe('perf options', () => {
  it('runs every section with the default durations and writes docs/performance.md', () => {
    const options = parseOptions([], defaults)
    expect([...options.sections]).toEqual([1, 2, 3, 4, 5])
    expect(options).toMatchObject({
      quick: false,
      runSeconds: 5,
      concurrency: [1, 32],
      semanticSizes: [10_000, 100_000],
      out: 'docs/performance.md',
      cpuProfDir: undefined,
      affinityClients: 8,
      semanticBudgetSeconds: 300,
    })
  })

  it('takes the number of section 5 clients, a positive integer', () => {
    expect(parseOptions(['--affinity-clients', '4'], defaults).affinityClients).toBe(4)
    expect(() => parseOptions(['--affinity-clients', '0'], defaults)).toThrow(
      '--affinity-clients: expected a positive integer, got "0"',
    )
  })

  it('shortens everything with --quick, and explicit durations win', () => {
    const quick = parseOptions(['--quick'], defaults)
    expect(quick.runSeconds).toBeLessThan(5)
    expect(quick.engineSeconds).toBeLessThan(20)
    expect(parseOptions(['--quick', '--duration', '3'], defaults).runSeconds).toBe(3)
  })

  it('selects sections with --only and rejects unknown ones', () => {
    expect([...parseOptions(['--only', '1,2'], defaults).sections]).toEqual([1, 2])
    expect(() => parseOptions(['--only', '1,9'], defaults)).toThrow(/--only: expected section numbers 1-5/)
    expect(() => parseOptions(['--only', 'a'], defaults)).toThrow(/--only/)
  })

  it('names the flag and what it expected on bad values', () => {
    expect(() => parseOptions(['--duration', '0'], defaults)).toThrow(
      '--duration: expected a positive number, got "0"',
    )
    expect(() => parseOptions(['--concurrency', '1,x'], defaults)).toThrow(/--concurrency/)
    expect(() => parseOptions(['--bogus'], defaults)).toThrow(/bogus/)
  })

  it('profiles into a fresh temp folder with --cpu-prof, or the one given', () => {
    expect(parseOptions(['--cpu-prof'], defaults).cpuProfDir).toBe(
      '/tmp/velo-perf-cpu-prof-2026-01-02T03-04-05-678Z',
    )
    expect(parseOptions(['--cpu-prof-dir', '/x'], defaults).cpuProfDir).toBe('/x')
  })

  it('lifts the semantic build budget with --full and skips writing with --no-write', () => {
    expect(parseOptions(['--full'], defaults).semanticBudgetSeconds).toBe(Number.POSITIVE_INFINITY)
    expect(parseOptions(['--no-write'], defaults).out).toBeUndefined()
  })
})
