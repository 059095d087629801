import { execa } from 'execa'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type SupervisedProcess, spawnSupervised, waitUntil } from '../../src/core/process/supervise.js'
import {
  type CacheEvent,
  createResponseCache,
  type VeloResponseCache,
} from '../../src/proxy/cache/response-cache.js'
import type { CachedResponse } from '../../src/proxy/pipeline-types.js'
import { lacks, type RigRedis, required, rig, startRigRedis } from '../helpers/rig.js'

const CHAT = '/v1/chat/completions'

const body = (question: string, extra: Record<string, unknown> = {}) => ({
  model: 'velo-tiny',
  messages: [{ role: 'user', content: question }],
  temperature: 0,
  ...extra,
})

const plain: CachedResponse = {
  status: 200,
  contentType: 'application/json',
  body: '{"id":"chatcmpl-7","choices":[{"index":0,"message":{"role":"assistant","content":"Grün – ✓"}}]}',
  chunks: undefined,
}
const streamed: CachedResponse = {
  status: 200,
  contentType: 'text/event-stream',
  body: undefined,
  chunks: [
    'data: {"choices":[{"index":0,"delta":{"role":"assistant"}}]}\n\n',
    'data: {"choices":[{"index":0,"delta":{"content":"Grün – ✓"}}]}\n\n',
    'data: [DONE]\n\n',
  ],
}

function bytes(response: CachedResponse | undefined): Buffer {
  return Buffer.from((response?.chunks ?? [response?.body ?? '']).join(''), 'utf8')
}

interface Instance {
  cache: VeloResponseCache
  events: CacheEvent[]
  logs: string[]
}

function instance(url: string): Instance {
  const events: CacheEvent[] = []
  const logs: string[] = []
  const cache = createResponseCache(
    { redis: url, redisPrefix: `velo-test:${process.pid}:` },
    { onEvent: (event) => events.push(event), log: (level, message) => logs.push(`${level}: ${message}`) },
  )
  return { cache, events, logs }
}

describe.skipIf(lacks('redis'))('exact cache shared through a real Redis', () => {
  let redis: RigRedis | undefined
  let restarted: SupervisedProcess | undefined
  let a: Instance
  let b: Instance

  beforeAll(async () => {
    redis = await startRigRedis()
    a = instance(redis.url)
    b = instance(redis.url)
    await Promise.all([a.cache.ready(), b.cache.ready()])
  })

  afterAll(async () => {
    await a?.cache.close()
    await b?.cache.close()
    await redis?.stop()
    await restarted?.stop()
  })

  it('lets a second velo instance answer what the first one stored, byte-identical, plain and streamed', async () => {
    expect(a.cache.stats().redis).toBe('up')
    for (const [request, response] of [
      [body('Name a colour.'), plain],
      [body('Name a colour.', { stream: true }), streamed],
    ] as const) {
      const first = await a.cache.lookup(CHAT, request, {})
      expect(first.outcome).toBe('miss')
      await a.cache.store(first, response)
      const second = await b.cache.lookup(CHAT, structuredClone(request), {})
      expect(second.outcome).toBe('hit')
      expect(bytes(second.response)).toEqual(bytes(response))
      expect(second.response?.chunks).toEqual(response.chunks)
      expect(second.response?.contentType).toBe(response.contentType)
    }
    expect(
      b.events
        .filter((e) => e.type === 'lookup' && e.outcome === 'hit')
        .map((e) => e.type === 'lookup' && e.tier),
    ).toEqual(['redis', 'redis'])
    // no-store on one instance keeps the response out of the shared tier too.
    const private_ = await a.cache.lookup(CHAT, body('Secret?'), { 'cache-control': 'no-store' })
    await a.cache.store(private_, plain)
    expect((await b.cache.lookup(CHAT, body('Secret?'), {})).outcome).toBe('miss')
  })

  it('keeps serving from memory when Redis dies, says so in logs and metrics, and uses Redis again when it is back', async () => {
    const url = required(redis, 'redis').url
    await required(redis, 'redis').stop()
    redis = undefined

    // B answered 'Name a colour.' before, so it has the entry in memory.
    const remembered = await b.cache.lookup(CHAT, body('Name a colour.'), {})
    expect(remembered.outcome).toBe('hit')
    expect(bytes(remembered.response)).toEqual(bytes(plain))

    // A new request: a miss, stored in memory without an error, then a hit.
    const fresh = await a.cache.lookup(CHAT, body('Name a fruit.'), {})
    expect(fresh.outcome).toBe('miss')
    await a.cache.store(fresh, plain)
    expect((await a.cache.lookup(CHAT, body('Name a fruit.'), {})).outcome).toBe('hit')

    await waitUntil(async () => a.cache.stats().redis === 'down' && b.cache.stats().redis === 'down', {
      timeoutMs: 10_000,
      what: 'the cache to notice that Redis is down',
    })
    expect(a.cache.stats().redisOutages).toBe(1)
    expect(a.events.some((e) => e.type === 'redis' && e.status === 'down')).toBe(true)
    expect(a.logs.filter((line) => line.includes('unreachable'))).toHaveLength(1)
    expect(a.logs.join('\n')).toMatch(/serving from memory only/)

    // Redis comes back on the same port: the tier reconnects on its own.
    const port = new URL(url).port
    restarted = spawnSupervised(required(rig().redisServer, 'redis-server'), [
      '--port',
      port,
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
    ])
    await waitUntil(
      async () => {
        const { stdout } = await execa('redis-cli', ['-p', port, 'ping'], { reject: false })
        return stdout.trim() === 'PONG'
      },
      { timeoutMs: 20_000, process: restarted, what: 'redis-server (restarted)' },
    )
    await waitUntil(async () => a.cache.stats().redis === 'up' && b.cache.stats().redis === 'up', {
      timeoutMs: 20_000,
      what: 'the cache to reconnect to Redis',
    })
    expect(a.logs.join('\n')).toMatch(/Redis at .* is back/)
    const again = await a.cache.lookup(CHAT, body('Name a vegetable.'), {})
    await a.cache.store(again, streamed)
    const shared = await b.cache.lookup(CHAT, body('Name a vegetable.'), {})
    expect(shared.outcome).toBe('hit')
    expect(bytes(shared.response)).toEqual(bytes(streamed))
  })
})
