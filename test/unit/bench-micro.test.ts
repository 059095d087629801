import { describe, expect, it } from 'vitest'
import { llamaBenchArgs, parseLlamaBenchJson } from '../../src/core/bench/micro.js'

const OUTPUT = `[
  {"build_commit": "de3ff81", "model_filename": "/m.gguf", "n_threads": 2, "n_prompt": 512, "n_gen": 0,
   "avg_ts": 21840.34, "stddev_ts": 781.81, "samples_ts": [21287.5, 22393.2]},
  {"build_commit": "de3ff81", "model_filename": "/m.gguf", "n_threads": 2, "n_prompt": 0, "n_gen": 128,
   "avg_ts": 1995.35, "stddev_ts": 142.53, "samples_ts": [1894.56, 2096.13]}
]`

describe('llama-bench microbenchmarks', () => {
  it('parses llama-bench -o json into pp and tg results', () => {
    const results = parseLlamaBenchJson(OUTPUT, { model: 'velo-tiny', params: { threads: 2 } })
    expect(results).toEqual([
      expect.objectContaining({
        test: 'pp512',
        kind: 'pp',
        tokens: 512,
        source: 'llama-bench',
        tokensPerSec: 21840.34,
        threads: 2,
      }),
      expect.objectContaining({
        test: 'tg128',
        kind: 'tg',
        tokens: 128,
        stddev: 142.53,
        samples: [1894.56, 2096.13],
      }),
    ])
    expect(results[0]?.params).toEqual({ threads: 2 })
  })

  it('skips lines before the JSON and rejects output that is not JSON', () => {
    expect(parseLlamaBenchJson(`loading...\n${OUTPUT}`, { model: 'm' })).toHaveLength(2)
    expect(() => parseLlamaBenchJson('garbage', { model: 'm' })).toThrow(/not JSON/)
  })

  it('maps llama-server arguments onto llama-bench', () => {
    expect(
      llamaBenchArgs(['--threads', '4', '--batch-size', '512', '--ctx-size', '2048', '-fa', 'on', '--mlock']),
    ).toEqual({
      threads: 4,
      args: ['-b', '512', '-fa', 'on'],
    })
    expect(llamaBenchArgs([]).threads).toBeUndefined()
  })
})
