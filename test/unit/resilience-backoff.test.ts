import { describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/core/config/load.js'
import { backoffDelay } from '../../src/proxy/resilience/backoff.js'
import { resilienceSettings } from '../../src/proxy/resilience/settings.js'

describe('the retry backoff', () => {
  it('doubles per retry from the base step, up to the cap', () => {
    const top = (retry: number) => backoffDelay(retry, 100, 1000, () => 1)
    expect([1, 2, 3, 4, 5, 6].map(top)).toEqual([100, 200, 400, 800, 1000, 1000])
  })

  it('jitters each wait between half its step and the whole step', () => {
    expect(backoffDelay(3, 100, 1000, () => 0)).toBe(200)
    expect(backoffDelay(3, 100, 1000, () => 0.5)).toBe(300)
    for (let i = 0; i < 200; i++) {
      const delay = backoffDelay(2, 100, 1000)
      expect(delay).toBeGreaterThanOrEqual(100)
      expect(delay).toBeLessThanOrEqual(200)
    }
  })
})

describe('the resilience settings', () => {
  it('has the documented defaults', () => {
    expect(resilienceSettings(parseConfig({}))).toEqual({
      connectTimeoutMs: 5000,
      firstTokenTimeoutMs: 120_000,
      idleTimeoutMs: 60_000,
      retries: 2,
      backoffMs: 250,
      maxBackoffMs: 4000,
      breaker: { failures: 5, cooldownMs: 30_000 },
    })
  })

  it('reads durations as people write them', () => {
    const settings = resilienceSettings(
      parseConfig({
        resilience: {
          timeouts: { connect: '2s', firstToken: '30s', idle: 500 },
          retries: { max: 0, backoff: '1s', maxBackoff: '10s' },
          breaker: { failures: 2, cooldown: '1m' },
        },
      }),
    )
    expect(settings).toMatchObject({
      connectTimeoutMs: 2000,
      firstTokenTimeoutMs: 30_000,
      idleTimeoutMs: 500,
      retries: 0,
      backoffMs: 1000,
      maxBackoffMs: 10_000,
      breaker: { failures: 2, cooldownMs: 60_000 },
    })
  })

  it('keeps server.upstreamTimeout as the bound on every wait (a lowered one still applies)', () => {
    const settings = resilienceSettings(parseConfig({ server: { upstreamTimeout: '10s' } }))
    expect(settings.firstTokenTimeoutMs).toBe(10_000)
    expect(settings.idleTimeoutMs).toBe(10_000)
    expect(settings.connectTimeoutMs).toBe(5000)
  })

  it('treats 0 as no limit', () => {
    const settings = resilienceSettings(
      parseConfig({ server: { upstreamTimeout: 0 }, resilience: { timeouts: { idle: 0 } } }),
    )
    expect(settings.idleTimeoutMs).toBe(0)
    expect(settings.firstTokenTimeoutMs).toBe(120_000)
  })

  it('names the field and what was expected for a bad value', () => {
    expect(() => parseConfig({ resilience: { breaker: { failures: 0 } } })).toThrow(
      /resilience\.breaker\.failures/,
    )
    expect(() => parseConfig({ resilience: { timeouts: { idle: 'soon' } } })).toThrow(
      /resilience\.timeouts\.idle: expected a duration/,
    )
  })
})
