import { hardwareFrom } from '../../src/core/profiles/hardware.js'
import type { Profile } from '../../src/core/profiles/schema.js'
import { profileId } from '../../src/core/profiles/store.js'

/** Profiles for the profiles-* tests: two machines and a throughput profile made on the first. */
export const here = hardwareFrom({ cpuModel: 'AMD EPYC', cores: 2, ramBytes: 24 * 1024 ** 3, gpus: [] })
export const there = hardwareFrom({
  cpuModel: 'Intel Xeon',
  cores: 32,
  ramBytes: 256 * 1024 ** 3,
  gpus: [{ name: 'NVIDIA H100', vramBytes: 80 * 1024 ** 3 }],
})

export function sampleProfile(overrides: Partial<Profile> = {}, hardware = here): Profile {
  const digest = 'd249aa853ae5e3b719d31da7277798e5332bc80e06b6a105eda700832ca58f48'
  const summary = (median: number) => ({ median, min: median * 0.9, max: median * 1.1, samples: [median] })
  return {
    version: 1,
    id: profileId('velo-small', digest, hardware),
    model: {
      name: 'velo-small',
      path: '/models/velo-small.gguf',
      digest,
      digestMethod: 'gguf-sampled-sha256',
    },
    backend: 'llama-server',
    engine: { version: '0.5.0' },
    hardware,
    objective: {
      goal: 'throughput',
      metric: 'aggregate generation tokens/s',
      unit: 'tok/s',
      higherIsBetter: true,
      concurrency: 4,
      promptTokens: 128,
      genTokens: 64,
      minCtx: 2048,
      maxTtftMs: 10_000,
    },
    parameters: {
      ctx: 8192,
      parallel: 4,
      threads: 2,
      ubatch: 256,
      flashAttention: 'on',
      cacheTypeK: 'q8_0',
      cacheTypeV: 'q8_0',
    },
    measurements: {
      baseline: summary(100),
      tuned: summary(130),
      speedup: { median: 1.3, low: 1.1, high: 1.5 },
      trials: 12,
      seconds: 300,
    },
    createdAt: '2026-11-28T10:00:00.000Z',
    ...overrides,
  }
}
