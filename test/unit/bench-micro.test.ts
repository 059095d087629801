import { describe, expect, it } from 'vitest'
import {
  decodeStepsPerSec,
  llamaBenchArgs,
  parseLlamaBenchJson,
  promptTokensPerSec,
} from '../../src/core/bench/micro.js'

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

  it('passes the scheduling arguments on, so both sides run at the same priority', () => {
    expect(llamaBenchArgs(['--prio', '2', '--poll', '0', '-C', 'f', '--cpu-strict', '1', '-t', '1'])).toEqual(
      {
        threads: 1,
        args: ['--prio', '2', '--poll', '0', '-C', 'f', '--cpu-strict', '1'],
      },
    )
    // `-1` is a value (low priority), not the next flag.
    expect(llamaBenchArgs(['--prio', '-1']).args).toEqual(['--prio', '-1'])
    expect(llamaBenchArgs(['--prio', '--mlock']).args).toEqual([])
  })

  it('counts decode steps from llama-server timings: N tokens took N - 1 steps', () => {
    // 128 tokens: the first came from the prompt's logits, 127 decode steps in 1000 ms.
    expect(decodeStepsPerSec({ predicted_n: 128, predicted_ms: 1000 })).toBe(127)
    expect(decodeStepsPerSec({ predicted_n: 1, predicted_ms: 0.001 })).toBeUndefined()
    expect(decodeStepsPerSec({})).toBeUndefined()
    expect(promptTokensPerSec({ prompt_n: 512, prompt_ms: 250 })).toBe(2048)
    expect(promptTokensPerSec({ prompt_n: 0, prompt_ms: 1 })).toBeUndefined()
  })
})
