import { Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import {
  cacheKey,
  canonicalJson,
  isDeterministic,
  parseCacheControl,
  semanticParts,
} from '../../src/proxy/cache/normalize.js'
import { type CacheEvent, createResponseCache } from '../../src/proxy/cache/response-cache.js'
import { registerStageMetrics } from '../../src/proxy/metrics.js'
import type { CachedResponse } from '../../src/proxy/pipeline-types.js'

const CHAT = '/v1/chat/completions'

function chatBody(overrides: Record<string, unknown> = {}) {
  return {
    model: 'velo-tiny',
    messages: [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Name a colour.' },
    ],
    temperature: 0,
    max_tokens: 16,
    ...overrides,
  }
}

const plain: CachedResponse = {
  status: 200,
  contentType: 'application/json',
  body: '{"id":"chatcmpl-1","choices":[{"index":0,"message":{"role":"assistant","content":"Blue ✓"}}]}',
  chunks: undefined,
}

const streamed: CachedResponse = {
  status: 200,
  contentType: 'text/event-stream',
  body: undefined,
  chunks: [
    'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n',
    'data: {"choices":[{"index":0,"delta":{"content":"Bl"}}]}\n\n',
    'data: {"choices":[{"index":0,"delta":{"content":"ue ✓"}}]}\n\n',
    'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n',
    'data: [DONE]\n\n',
  ],
}

describe('normalized cache keys', () => {
  it('ignores key order, null fields and fields that do not change the answer', () => {
    const a = cacheKey(CHAT, chatBody())
    const reordered = cacheKey(CHAT, {
      max_tokens: 16,
      temperature: 0,
      messages: [
        { content: 'Be brief.', role: 'system' },
        { content: [{ type: 'text', text: 'Name a colour.' }], role: 'user' },
      ],
      model: 'velo-tiny',
      user: 'alice',
      seed: null,
      metadata: { trace: 1 },
    })
    expect(reordered).toBe(a)
  })

  it('changes with model, messages, sampling, tools, response format, stream and route', () => {
    const base = cacheKey(CHAT, chatBody())
    const variants = [
      cacheKey(CHAT, chatBody({ model: 'other' })),
      cacheKey(CHAT, chatBody({ messages: [{ role: 'user', content: 'Name a colour!' }] })),
      cacheKey(CHAT, chatBody({ top_p: 0.5 })),
      cacheKey(CHAT, chatBody({ max_tokens: 17 })),
      cacheKey(CHAT, chatBody({ tools: [{ type: 'function', function: { name: 'f', parameters: {} } }] })),
      cacheKey(CHAT, chatBody({ response_format: { type: 'json_object' } })),
      cacheKey(CHAT, chatBody({ stream: true })),
      cacheKey(CHAT, chatBody({ stream: true, stream_options: { include_usage: true } })),
      cacheKey('/api/chat', chatBody()),
    ]
    expect(new Set([base, ...variants]).size).toBe(variants.length + 1)
  })

  it('treats an absent stream flag as the route default', () => {
    expect(cacheKey(CHAT, chatBody({ stream: false }))).toBe(cacheKey(CHAT, chatBody()))
    expect(cacheKey('/api/chat', chatBody({ stream: true }))).toBe(cacheKey('/api/chat', chatBody()))
    expect(cacheKey('/api/chat', chatBody({ stream: false }))).not.toBe(cacheKey('/api/chat', chatBody()))
  })

  it('writes canonical JSON with sorted keys', () => {
    expect(canonicalJson({ b: 1, a: [{ d: null, c: 'x' }], e: undefined })).toBe('{"a":[{"c":"x"}],"b":1}')
  })

  it('treats temperature 0 or a fixed seed as deterministic, OpenAI and Ollama style', () => {
    expect(isDeterministic('chat', { temperature: 0 })).toBe(true)
    expect(isDeterministic('chat', { seed: 42, temperature: 0.8 })).toBe(true)
    expect(isDeterministic('chat', { options: { temperature: 0 } })).toBe(true)
    expect(isDeterministic('completion', { options: { seed: 7 } })).toBe(true)
    expect(isDeterministic('chat', {})).toBe(false)
    expect(isDeterministic('chat', { seed: -1 })).toBe(false)
    expect(isDeterministic('chat', { temperature: 0.2 })).toBe(false)
    expect(isDeterministic('embedding', {})).toBe(true)
  })

  it('reads Cache-Control and Pragma', () => {
    expect(parseCacheControl({ 'cache-control': 'no-cache' })).toEqual({ noCache: true, noStore: false })
    expect(parseCacheControl({ 'cache-control': 'No-Store, max-age=0' })).toEqual({
      noCache: true,
      noStore: true,
    })
    expect(parseCacheControl({ pragma: 'no-cache' })).toEqual({ noCache: true, noStore: false })
    expect(parseCacheControl({})).toEqual({ noCache: false, noStore: false })
  })

  it('puts everything but the last user turn into the semantic namespace', () => {
    const a = semanticParts(CHAT, chatBody())
    const b = semanticParts(
      CHAT,
      chatBody({
        messages: [
          { role: 'system', content: 'Be brief.' },
          { role: 'user', content: 'Another question' },
        ],
      }),
    )
    expect(a?.text).toBe('Name a colour.')
    expect(a?.namespace).toBe(b?.namespace)
    expect(
      semanticParts(
        CHAT,
        chatBody({
          messages: [
            { role: 'system', content: 'Other' },
            { role: 'user', content: 'Name a colour.' },
          ],
        }),
      )?.namespace,
    ).not.toBe(a?.namespace)
    expect(semanticParts('/v1/embeddings', { model: 'e', input: 'x' })).toBeUndefined()
    expect(
      semanticParts(
        CHAT,
        chatBody({
          messages: [
            { role: 'user', content: 'q' },
            { role: 'assistant', content: 'a' },
          ],
        }),
      ),
    ).toBeUndefined()
  })
})

describe('exact cache in memory', () => {
  it('answers a repeated deterministic request byte-identically, plain and streamed', async () => {
    const cache = createResponseCache()
    for (const [body, response] of [
      [chatBody(), plain],
      [chatBody({ stream: true }), streamed],
    ] as const) {
      const first = await cache.lookup(CHAT, body, {})
      expect(first.outcome).toBe('miss')
      await cache.store(first, response)
      const second = await cache.lookup(CHAT, structuredClone(body), {})
      expect(second.outcome).toBe('hit')
      expect(second.response?.body).toBe(response.body)
      expect(second.response?.chunks).toEqual(response.chunks)
      expect(Buffer.from((second.response?.chunks ?? [second.response?.body ?? '']).join(''))).toEqual(
        Buffer.from((response.chunks ?? [response.body ?? '']).join('')),
      )
    }
    // A plain request never gets the streamed frames and the other way round.
    expect((await cache.lookup(CHAT, chatBody(), {})).response?.contentType).toBe('application/json')
    expect(cache.stats()).toMatchObject({ hits: 3, misses: 2, entries: 2 })
  })

  it('bypasses requests with random sampling unless their route is opted in', async () => {
    const cache = createResponseCache()
    const random = await cache.lookup(CHAT, chatBody({ temperature: 0.7 }), {})
    expect(random).toMatchObject({ outcome: 'bypass', key: undefined, reason: 'not-deterministic' })
    await cache.store(random, plain)
    expect(cache.stats().entries).toBe(0)

    const optedIn = createResponseCache({
      exact: { enabled: true, maxBytes: 1e6, ttl: 60_000, nondeterministicRoutes: [CHAT] },
    })
    const miss = await optedIn.lookup(CHAT, chatBody({ temperature: 0.7 }), {})
    expect(miss.outcome).toBe('miss')
    await optedIn.store(miss, plain)
    expect((await optedIn.lookup(CHAT, chatBody({ temperature: 0.7 }), {})).outcome).toBe('hit')
  })

  it('honours Cache-Control: no-cache skips the lookup, no-store the write', async () => {
    const cache = createResponseCache()
    const noStore = await cache.lookup(CHAT, chatBody(), { 'cache-control': 'no-store' })
    expect(noStore.outcome).toBe('miss')
    await cache.store(noStore, plain)
    expect((await cache.lookup(CHAT, chatBody(), {})).outcome).toBe('miss')

    const stored = await cache.lookup(CHAT, chatBody(), {})
    await cache.store(stored, plain)
    const noCache = await cache.lookup(CHAT, chatBody(), { 'cache-control': 'no-cache' })
    expect(noCache).toMatchObject({ outcome: 'bypass', reason: 'no-cache', response: undefined })
    // no-cache still refreshes the entry with the new response.
    await cache.store(noCache, { ...plain, body: '{"fresh":true}' })
    expect((await cache.lookup(CHAT, chatBody(), {})).response?.body).toBe('{"fresh":true}')
  })

  it('never stores errors or unknown routes', async () => {
    const cache = createResponseCache()
    const lookup = await cache.lookup(CHAT, chatBody(), {})
    await cache.store(lookup, { ...plain, status: 500 })
    expect(cache.stats().entries).toBe(0)
    expect((await cache.lookup('/v1/models', {}, {})).outcome).toBe('bypass')
    expect((await cache.lookup(CHAT, 'not json', {})).outcome).toBe('bypass')
  })

  it('evicts least recently used entries to stay within maxBytes, and expires entries after the TTL', async () => {
    let now = 1_000_000
    const events: CacheEvent[] = []
    const cache = createResponseCache(
      { exact: { enabled: true, maxBytes: 2000, ttl: 60_000 } },
      { now: () => now, onEvent: (event) => events.push(event) },
    )
    const big = (n: number): CachedResponse => ({ ...plain, body: `{"n":${n},"pad":"${'x'.repeat(500)}"}` })
    for (let n = 0; n < 6; n++) {
      const lookup = await cache.lookup(CHAT, chatBody({ seed: n }), {})
      await cache.store(lookup, big(n))
    }
    const stats = cache.stats()
    expect(stats.bytes).toBeLessThanOrEqual(2000)
    expect(stats.evictions).toBeGreaterThan(0)
    expect(events.some((e) => e.type === 'evict' && e.reason === 'size')).toBe(true)
    expect((await cache.lookup(CHAT, chatBody({ seed: 0 }), {})).outcome).toBe('miss')
    expect((await cache.lookup(CHAT, chatBody({ seed: 5 }), {})).outcome).toBe('hit')
    now += 61_000
    expect((await cache.lookup(CHAT, chatBody({ seed: 5 }), {})).outcome).toBe('miss')
  })

  it('reports lookups to the metrics hook and clears', async () => {
    const events: CacheEvent[] = []
    const cache = createResponseCache({}, { onEvent: (event) => events.push(event) })
    const lookup = await cache.lookup(CHAT, chatBody(), {})
    await cache.store(lookup, plain)
    await cache.lookup(CHAT, chatBody(), {})
    await cache.lookup(CHAT, chatBody({ temperature: 1 }), {})
    expect(events.map((e) => (e.type === 'lookup' ? e.outcome : e.type))).toEqual([
      'miss',
      'store',
      'hit',
      'bypass',
    ])
    expect(cache.stats()).toMatchObject({ hits: 1, misses: 1, bypasses: 1, stores: 1, redis: 'off' })
    expect(await cache.clear()).toBe(1)
    expect(cache.stats().entries).toBe(0)
  })
})

describe('cache metrics', () => {
  async function scrape(stats: Parameters<typeof registerStageMetrics>[1]['cache']): Promise<string> {
    const registry = new Registry()
    registerStageMetrics(registry, { cache: stats })
    return registry.metrics()
  }

  it('export Redis state and outages only when a Redis tier is configured', async () => {
    const memoryOnly = createResponseCache({})
    const without = await scrape(() => memoryOnly.stats())
    expect(without).toContain('velo_cache_semantic_embed_errors_total 0')
    expect(without).not.toContain('velo_cache_redis')

    let redis: 'up' | 'down' = 'up'
    const shared = () => ({ ...memoryOnly.stats(), redis, redisOutages: redis === 'down' ? 2 : 1 })
    const registry = new Registry()
    registerStageMetrics(registry, { cache: shared })
    expect(await registry.metrics()).toContain('velo_cache_redis_up 1')
    redis = 'down'
    const down = await registry.metrics()
    expect(down).toContain('velo_cache_redis_up 0')
    expect(down).toContain('velo_cache_redis_outages_total 2')
  })
})
