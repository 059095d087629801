import { describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/core/config/load.js'
import type { VeloConfigInput } from '../../src/core/config/schema.js'
import { VeloError } from '../../src/core/errors.js'
import { decide, MemoryRateLimiter, refill } from '../../src/proxy/auth/buckets.js'
import { Auth } from '../../src/proxy/auth/index.js'
import { createKey, KeyRing, presentedToken, sha256Hex } from '../../src/proxy/auth/keys.js'
import { checkExposure, isLoopback } from '../../src/proxy/serve.js'

function config(input: VeloConfigInput = {}) {
  return parseConfig(input)
}

function thrown(run: () => unknown): VeloError {
  try {
    run()
  } catch (error) {
    if (error instanceof VeloError) return error
    throw error
  }
  throw new Error('expected a VeloError')
}

describe('API keys', () => {
  const hashed = createKey()
  const ring = new KeyRing(
    config({
      auth: {
        keys: [
          { key: 'sk-plain', name: 'alice', models: ['qwen*', 'llama3.2'] },
          { key: hashed.hashed, scope: 'admin' },
        ],
      },
    }).auth.keys,
  )

  it('finds a plain key and a key configured only by its SHA-256', () => {
    expect(ring.lookup('sk-plain')?.name).toBe('alice')
    expect(ring.lookup(hashed.key)).toMatchObject({ name: 'key-2', scope: 'admin' })
    expect(hashed.hashed).toBe(`sha256:${sha256Hex(hashed.key)}`)
    expect(ring.lookup('sk-other')).toBeUndefined()
    expect(ring.lookup(hashed.hashed)).toBeUndefined()
  })

  it('matches model allowlists by name and by * pattern, literally otherwise', () => {
    const alice = ring.lookup('sk-plain')
    expect(alice?.allows('qwen2.5:7b')).toBe(true)
    expect(alice?.allows('llama3.2')).toBe(true)
    expect(alice?.allows('llama3.2:1b')).toBe(false)
    expect(alice?.allows('xqwen')).toBe(false)
    expect(ring.lookup(hashed.key)?.allows('anything')).toBe(true)
    const dotted = new KeyRing(config({ auth: { keys: [{ key: 'k', models: ['a.b*'] }] } }).auth.keys)
    expect(dotted.lookup('k')?.allows('a.bc')).toBe(true)
    expect(dotted.lookup('k')?.allows('axbc')).toBe(false)
  })

  it('reads Bearer tokens and x-api-key', () => {
    expect(presentedToken('Bearer sk-1', undefined)).toBe('sk-1')
    expect(presentedToken('bearer   sk-1 ', undefined)).toBe('sk-1')
    expect(presentedToken('Basic abc', undefined)).toBeUndefined()
    expect(presentedToken(undefined, ' sk-2 ')).toBe('sk-2')
    expect(presentedToken(undefined, undefined)).toBeUndefined()
  })

  it('rejects a malformed hash and a key or name listed twice, naming the field', () => {
    expect(() => config({ auth: { keys: [{ key: 'sha256:abc' }] } })).toThrow(
      /auth\.keys\[0\]\.key: .*64 hex/,
    )
    // The secret itself is not echoed.
    expect(() => config({ auth: { keys: [{ key: 'sha256:abc' }] } })).not.toThrow(/sha256:abc/)
    expect(() => config({ auth: { keys: [{ key: 'a' }, { key: 'a' }] } })).toThrow(
      /auth\.keys\[1\]\.key: the same key is listed twice/,
    )
    expect(() =>
      config({
        auth: {
          keys: [
            { key: 'a', name: 'n' },
            { key: 'b', name: 'n' },
          ],
        },
      }),
    ).toThrow(/auth\.keys\[1\]\.name: name "n" is used twice/)
  })
})

describe('Auth.authenticate', () => {
  const auth = new Auth(
    config({
      auth: {
        keys: [
          { key: 'sk-user', name: 'user' },
          { key: 'sk-admin', name: 'ops', scope: 'admin' },
        ],
      },
    }),
  )

  it('lets probes through without a key and asks every other path for one', () => {
    expect(auth.authenticate('/health', undefined, undefined)).toBeUndefined()
    expect(auth.authenticate('/ready', undefined, undefined)).toBeUndefined()
    expect(thrown(() => auth.authenticate('/metrics', undefined, undefined))).toMatchObject({
      status: 401,
      message: 'missing API key',
    })
    expect(thrown(() => auth.authenticate('/v1/chat/completions', 'Bearer nope', undefined))).toMatchObject({
      status: 401,
      message: 'invalid API key',
    })
  })

  it('gives /velo/* to admin keys only', () => {
    expect(thrown(() => auth.authenticate('/velo/status', 'Bearer sk-user', undefined))).toMatchObject({
      status: 403,
      code: 'VELO_FORBIDDEN',
    })
    expect(auth.authenticate('/velo/status', 'Bearer sk-admin', undefined)?.name).toBe('ops')
    expect(auth.authenticate('/metrics', 'Bearer sk-user', undefined)?.name).toBe('user')
  })

  it('checks the model by any of its names', () => {
    const limited = new Auth(config({ auth: { keys: [{ key: 'k', name: 'ci', models: ['small'] }] } }))
    const principal = limited.authenticate('/v1/chat/completions', 'Bearer k', undefined)
    expect(() => limited.checkModel(principal, 'gpt-4o-mini', 'small')).not.toThrow()
    expect(thrown(() => limited.checkModel(principal, 'big'))).toMatchObject({
      status: 403,
      message: 'key "ci" may not use model big',
    })
  })

  it('lets everything through when no key is configured', () => {
    const open = new Auth(config())
    expect(open.enabled).toBe(false)
    expect(open.authenticate('/velo/status', undefined, undefined)).toBeUndefined()
  })
})

describe('token buckets', () => {
  it('starts full, refills at the per-minute rate and never above capacity', () => {
    expect(refill(undefined, 60, 1000)).toEqual({ level: 60, at: 1000 })
    expect(refill({ level: 0, at: 0 }, 60, 30_000).level).toBe(30)
    expect(refill({ level: 50, at: 0 }, 60, 60_000).level).toBe(60)
  })

  it('admits rpm requests at once, then refuses with the wait until the next one', () => {
    let now = 0
    const limiter = new MemoryRateLimiter(() => now)
    const limits = { rpm: 3, tpm: undefined }
    const decisions = [1, 2, 3, 4].map(() => limiter.admitNow('k', limits))
    expect(decisions.map((d) => d.allowed)).toEqual([true, true, true, false])
    expect(decisions.map((d) => d.remainingRequests)).toEqual([2, 1, 0, 0])
    // 3 a minute: one more every 20 s.
    expect(decisions[3]).toMatchObject({ limit: 'rpm', retryAfterMs: 20_000 })
    now = 20_000
    expect(limiter.admitNow('k', limits).allowed).toBe(true)
    expect(limiter.admitNow('other', limits).allowed).toBe(true)
  })

  it('charges tokens after the fact and refuses while the token bucket is below zero', () => {
    let now = 0
    const limiter = new MemoryRateLimiter(() => now)
    const limits = { rpm: undefined, tpm: 600 }
    expect(limiter.admitNow('k', limits)).toMatchObject({ allowed: true, remainingTokens: 600 })
    limiter.chargeNow('k', 600, 900)
    const refused = limiter.admitNow('k', limits)
    // 300 tokens of debt at 10 a second: 30 s, plus 0.1 s to be above zero.
    expect(refused).toMatchObject({ allowed: false, limit: 'tpm', retryAfterMs: 30_100 })
    now = 30_100
    expect(limiter.admitNow('k', limits).allowed).toBe(true)
  })

  it('takes nothing from the request bucket when the token bucket refuses', () => {
    const result = decide({ level: 2, at: 0 }, { level: -5, at: 0 }, { rpm: 10, tpm: 100 }, 0)
    expect(result.decision.allowed).toBe(false)
    expect(result.requests?.level).toBe(2)
  })

  it('says which headers and Retry-After a refused key gets', async () => {
    const auth = new Auth(config({ auth: { keys: [{ key: 'k', name: 'n', rpm: 1 }] } }))
    const principal = auth.authenticate('/v1/chat/completions', 'Bearer k', undefined)
    const first = await auth.admit(principal)
    expect(first).toEqual({
      headers: { 'x-ratelimit-limit-requests': '1', 'x-ratelimit-remaining-requests': '0' },
      refused: undefined,
    })
    const second = await auth.admit(principal)
    expect(second?.refused).toMatchObject({ status: 429, code: 'VELO_RATE_LIMITED' })
    expect(second?.refused?.retryAfterSeconds).toBeGreaterThanOrEqual(59)
    expect(second?.headers['x-ratelimit-reset-requests']).toMatch(/^(\d+(\.\d)?s|1m0s)$/)
    await auth.close()
  })
})

describe('listening beyond this machine', () => {
  it('knows loopback addresses', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]'])
      expect(isLoopback(host)).toBe(true)
    for (const host of ['0.0.0.0', '::', '192.168.1.5', 'gpu-box']) expect(isLoopback(host)).toBe(false)
  })

  it('refuses a non-loopback host without keys unless told it is fine', () => {
    const exposed = config({ server: { host: '0.0.0.0' } })
    const error = thrown(() => checkExposure(exposed, false))
    expect(error.message).toMatch(/refusing to listen on 0\.0\.0\.0 without API keys/)
    expect(error.suggestion).toMatch(/--insecure-no-auth/)
    expect(error.exitCode).toBe(2)
    expect(() => checkExposure(exposed, true)).not.toThrow()
    expect(() =>
      checkExposure(config({ server: { host: '0.0.0.0' }, auth: { keys: [{ key: 'k' }] } }), false),
    ).not.toThrow()
    expect(() => checkExposure(config(), false)).not.toThrow()
  })
})
