import { describe, expect, it } from 'vitest'
import { parseMicroTests, toBenchOptions } from '../../src/core/bench/cli.js'
import {
  combinations,
  paramsLabel,
  parseBandwidth,
  parseConcurrency,
  parseSlo,
  parseSweep,
  serverArgs,
} from '../../src/core/bench/parse.js'
import { validateBenchOptions } from '../../src/core/bench/run.js'
import type { BenchOptions } from '../../src/core/bench/types.js'
import { VeloError } from '../../src/core/errors.js'

function errorOf(run: () => unknown): VeloError {
  try {
    run()
  } catch (error) {
    if (error instanceof VeloError) return error
    throw error
  }
  throw new Error('expected a VeloError')
}

describe('bench option parsing', () => {
  it('reads concurrency levels and rejects anything else by flag name', () => {
    expect(parseConcurrency('1,2,4')).toEqual([1, 2, 4])
    expect(parseConcurrency(' 8 , 2,2 ')).toEqual([8, 2])
    expect(errorOf(() => parseConcurrency('1,0')).message).toMatch(
      /^--concurrency: expected positive integers/,
    )
    expect(errorOf(() => parseConcurrency('two')).code).toBe('VELO_BAD_REQUEST')
  })

  it('splits --set into request options and llama-server arguments', () => {
    const sweep = parseSweep(['num_ctx=2048,4096', 'threads=1,2', 'request.top_k=20', 'fa=on'], true)
    expect(sweep).toEqual([
      { key: 'num_ctx', target: 'request', values: [2048, 4096] },
      { key: 'threads', target: 'server', values: [1, 2] },
      { key: 'top_k', target: 'request', values: [20] },
      { key: 'fa', target: 'server', values: ['on'] },
    ])
  })

  it('refuses server arguments when velo does not run the server, and says what to do', () => {
    const error = errorOf(() => parseSweep(['threads=1,2'], false))
    expect(error.message).toMatch(/--set threads: "threads" is a llama-server argument/)
    expect(error.suggestion).toMatch(/--gguf/)
    expect(errorOf(() => parseSweep(['nothing'], false)).message).toMatch(/expected key=v1,v2/)
    expect(errorOf(() => parseSweep(['a=1', 'a=2'], false)).message).toMatch(/given twice/)
    expect(errorOf(() => parseSweep(['a='], false)).message).toMatch(/at least one value/)
  })

  it('expands the matrix of all combinations', () => {
    const sweep = parseSweep(['x=1,2', 'y=p,q,r'], false)
    const all = combinations(sweep)
    expect(all).toHaveLength(6)
    expect(all).toContainEqual({ x: 2, y: 'r' })
    expect(combinations([])).toEqual([{}])
    expect(paramsLabel({ a: 1, b: true })).toBe('a=1 b=true')
  })

  it('turns a combination into llama-server flags', () => {
    expect(serverArgs({ threads: 2, 'ctx-size': 1024, mlock: true, 'no-mmap': false })).toEqual([
      '--threads',
      '2',
      '--ctx-size',
      '1024',
      '--mlock',
    ])
    expect(serverArgs({ t: 4, np: 2 })).toEqual(['--threads', '4', '--parallel', '2'])
  })

  it('reads SLOs and bandwidth', () => {
    expect(parseSlo('ttft=500ms,itl=50ms')).toEqual({ ttftMs: 500, itlMs: 50 })
    expect(parseSlo('e2e=2s')).toEqual({ e2eMs: 2000 })
    expect(errorOf(() => parseSlo('ttft=fast')).message).toMatch(/^--slo/)
    expect(errorOf(() => parseSlo('speed=1s')).message).toMatch(/unknown limit "speed"/)
    expect(parseBandwidth('50')).toBe(50e9)
    expect(parseBandwidth('12.5GB/s')).toBe(12.5e9)
    expect(parseBandwidth('measure')).toBe('measure')
    expect(errorOf(() => parseBandwidth('fast')).message).toMatch(/^--bandwidth/)
  })

  it('reads microbenchmark tests', () => {
    expect(parseMicroTests('pp512,tg128', true)).toEqual({
      promptTokens: [512],
      genTokens: [128],
      llamaBench: true,
    })
    expect(errorOf(() => parseMicroTests('pp', false)).message).toMatch(/^--micro-tests/)
  })

  it('rejects contradictory options before anything runs', () => {
    const base: BenchOptions = {
      url: 'http://127.0.0.1:1',
      models: [],
      concurrency: [1],
      promptTokens: 16,
      genTokens: 8,
      warmup: 0,
      repetitions: 1,
      sweep: [],
    }
    expect(() => validateBenchOptions(base)).not.toThrow()
    expect(errorOf(() => validateBenchOptions({ ...base, url: undefined })).message).toMatch(/^--url/)
    expect(errorOf(() => validateBenchOptions({ ...base, requests: 5, durationMs: 1000 })).message).toMatch(
      /--requests and --duration/,
    )
    expect(errorOf(() => validateBenchOptions({ ...base, rate: 0 })).message).toMatch(/^--rate/)
    expect(errorOf(() => validateBenchOptions({ ...base, repetitions: 0 })).message).toMatch(/^--repetitions/)
    expect(errorOf(() => validateBenchOptions({ ...base, sharedPrefixTokens: 16 })).message).toMatch(
      /^--shared-prefix/,
    )
  })

  it('needs --baseline for --fail-on-regression', () => {
    const input = {
      url: 'http://127.0.0.1:1',
      model: [],
      concurrency: '1',
      arrivals: 'poisson' as const,
      promptTokens: 16,
      genTokens: 8,
      warmup: 0,
      repetitions: 1,
      set: [],
      bandwidth: 'off',
      micro: false,
      microTests: 'tg8',
      llamaBench: false,
      timeout: '10s',
    }
    expect(toBenchOptions(input).concurrency).toEqual([1])
    expect(errorOf(() => toBenchOptions({ ...input, failOnRegression: 10 })).message).toMatch(
      /needs --baseline/,
    )
    expect(errorOf(() => toBenchOptions({ ...input, duration: 'soon' })).message).toMatch(/^--duration/)
    expect(errorOf(() => toBenchOptions({ ...input, serverArgs: '-t 2' })).message).toMatch(/^--server-args/)
  })
})
