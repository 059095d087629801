import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/core/config/load.js'
import type { VeloConfigInput } from '../../src/core/config/schema.js'
import type { LlamaServer } from '../../src/core/engine/llama-server.js'
import { silentLogger } from '../../src/proxy/logging.js'
import { startServe } from '../../src/proxy/serve.js'
import type { VeloServer } from '../../src/proxy/server.js'
import type { VeloStatus } from '../../src/proxy/status-types.js'
import { lacks, type RigRedis, required, rig, startRigLlamaServer, startRigRedis } from '../helpers/rig.js'
import { waitFor } from './serve-helpers.js'

/**
 * The response cache as clients see it: velo serve built as `velo serve` builds it (startServe),
 * in front of the rig's llama-servers (one for chat, one with `--embeddings` for the semantic
 * cache), checked through response headers, /metrics and /velo/status.
 */

const KEY = 'sk-velo-cache-test'

async function serve(config: VeloConfigInput): Promise<VeloServer> {
  return startServe({
    config: parseConfig({
      ...config,
      server: { port: 0, host: '127.0.0.1' },
      engine: { llamaServer: required(rig().llamaServer, 'llama-server') },
      // The synthetic model writes gibberish: tool-call repair would turn its answers into errors.
      toolCalls: { repair: false },
    }),
    version: 'test',
    logger: silentLogger(),
    autoOllama: false,
    defaultModel: false,
  })
}

interface Answer {
  status: number
  text: string
  headers: Record<string, string | string[] | undefined>
}

async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const response = await request(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  })
  return { status: response.statusCode, text: await response.body.text(), headers: response.headers }
}

async function get(url: string, headers: Record<string, string> = {}): Promise<string> {
  const response = await request(url, { headers })
  const text = await response.body.text()
  if (response.statusCode !== 200) throw new Error(`GET ${url}: ${response.statusCode} ${text}`)
  return text
}

/** One sample of a Prometheus text exposition (`name` with its labels as written), or undefined. */
function sample(exposition: string, series: string): number | undefined {
  const line = exposition.split('\n').find((row) => row.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

const chatBody = (question: string, overrides: Record<string, unknown> = {}) => ({
  model: 'velo-tiny',
  temperature: 0,
  max_tokens: 8,
  messages: [
    { role: 'system', content: 'You answer questions about the weather.' },
    { role: 'user', content: question },
  ],
  ...overrides,
})

describe.skipIf(lacks('llama-server'))('velo serve response cache over HTTP', () => {
  let chatEngine: LlamaServer
  let embedEngine: LlamaServer
  const upstreams = () => [{ url: `${chatEngine.url}/v1` }, { url: `${embedEngine.url}/v1` }]

  beforeAll(async () => {
    ;[chatEngine, embedEngine] = await Promise.all([
      startRigLlamaServer(),
      startRigLlamaServer({ args: ['--embeddings', '--pooling', 'mean'], alias: 'velo-embed' }),
    ])
  })
  afterAll(async () => {
    await Promise.all([chatEngine?.stop(), embedEngine?.stop()])
  })

  describe('semantic cache with auth.keys set', () => {
    let velo: VeloServer
    let chat: string
    const auth = { authorization: `Bearer ${KEY}` }

    beforeAll(async () => {
      velo = await serve({
        upstreams: upstreams(),
        auth: { keys: [{ key: KEY, name: 'ops', scope: 'admin' }] },
        cache: { semantic: { enabled: true, embeddingModel: 'velo-embed', models: ['velo-tiny'] } },
      })
      chat = `${velo.url}/v1/chat/completions`
    })
    afterAll(async () => {
      await velo?.close()
    })

    it('answers a repeated question semantically, never across system prompts, and exports the similarity', async () => {
      const question = 'What is the weather in Paris today?'
      const first = await post(chat, chatBody(question), auth)
      expect(first.status).toBe(200)
      expect(first.headers['x-velo-cache']).toBe('miss')

      // Not the same request (max_tokens differs), so not an exact hit: the same question is a
      // semantic one. The embedding call itself has to get past auth.keys for this to happen.
      const again = await post(chat, chatBody(question, { max_tokens: 9 }), auth)
      expect(again.status).toBe(200)
      expect(again.headers['x-velo-cache']).toBe('semantic-hit')
      expect(Number(again.headers['x-velo-similarity'])).toBeGreaterThanOrEqual(0.999)
      expect(again.text).toBe(first.text)

      const otherSystem = chatBody(question, { max_tokens: 10 })
      otherSystem.messages[0] = { role: 'system', content: 'You are a pirate.' }
      const pirate = await post(chat, otherSystem, auth)
      expect(pirate.status).toBe(200)
      expect(pirate.headers['x-velo-cache']).toBe('miss')
      expect(pirate.headers['x-velo-similarity']).toBeUndefined()

      const metrics = await get(`${velo.url}/metrics`, auth)
      expect(sample(metrics, 'velo_cache_semantic_hits_total')).toBe(1)
      expect(sample(metrics, 'velo_cache_semantic_embed_errors_total')).toBe(0)
      // One search found a neighbour (the hit); the pirate's namespace had no index to search.
      expect(sample(metrics, 'velo_cache_semantic_similarity_count{hit="true"}')).toBe(1)
      expect(sample(metrics, 'velo_cache_semantic_similarity_bucket{le="0.99",hit="true"}')).toBe(0)
      expect(sample(metrics, 'velo_cache_semantic_similarity_bucket{le="1",hit="true"}')).toBe(1)
      expect(sample(metrics, 'velo_cache_semantic_similarity_count{hit="false"}')).toBeUndefined()
      // No Redis configured: no Redis series at all (a 0 would read as an outage).
      expect(metrics).not.toContain('velo_cache_redis_up')

      const status = JSON.parse(await get(`${velo.url}/velo/status`, auth)) as VeloStatus
      expect(status.cache).toMatchObject({ semanticHits: 1, embedErrors: 0, redis: 'off' })
    })

    it('makes a failing embedding model visible in /metrics and /velo/status, answering every request', async () => {
      const misconfigured = await serve({
        upstreams: upstreams(),
        auth: { keys: [{ key: KEY, name: 'ops', scope: 'admin' }] },
        cache: { semantic: { enabled: true, embeddingModel: 'no-such-embedder' } },
      })
      try {
        const url = `${misconfigured.url}/v1/chat/completions`
        for (const maxTokens of [8, 9]) {
          const answer = await post(url, chatBody('Is it raining in Oslo?', { max_tokens: maxTokens }), auth)
          expect(answer.status).toBe(200)
          expect(answer.headers['x-velo-cache']).toBe('miss')
        }
        const metrics = await get(`${misconfigured.url}/metrics`, auth)
        expect(sample(metrics, 'velo_cache_semantic_embed_errors_total')).toBe(2)
        const status = JSON.parse(await get(`${misconfigured.url}/velo/status`, auth)) as VeloStatus
        expect(status.cache.embedErrors).toBe(2)
      } finally {
        await misconfigured.close()
      }
    })
  })

  describe('exact cache: no-store and eviction', () => {
    let velo: VeloServer
    let chat: string

    beforeAll(async () => {
      // Room for a few small answers only, so that a handful of requests must evict.
      velo = await serve({ upstreams: upstreams(), cache: { exact: { maxBytes: 4096 } } })
      chat = `${velo.url}/v1/chat/completions`
    })
    afterAll(async () => {
      await velo?.close()
    })

    it('answers a no-store request without keeping it: the repeat is still a miss', async () => {
      const body = chatBody('Will it snow in Bern?')
      const private_ = await post(chat, body, { 'cache-control': 'no-store' })
      expect(private_.status).toBe(200)
      expect(private_.headers['x-velo-cache']).toBe('miss')
      const repeat = await post(chat, body)
      expect(repeat.status).toBe(200)
      expect(repeat.headers['x-velo-cache']).toBe('miss')
      // The repeat had no no-store: it was kept, so the cache itself works for this request.
      expect((await post(chat, body)).headers['x-velo-cache']).toBe('hit')
    })

    it('evicts the least recently used answers to stay within maxBytes, and counts them', async () => {
      const oldest = chatBody('Is it windy in Lyon?')
      expect((await post(chat, oldest)).headers['x-velo-cache']).toBe('miss')
      // Each answer holds a few hundred bytes (llama-server's JSON with usage and timings).
      for (let index = 0; index < 16; index++) {
        const answer = await post(chat, chatBody(`Is it windy in town number ${index}?`))
        expect(answer.status).toBe(200)
      }
      const metrics = await get(`${velo.url}/metrics`)
      expect(sample(metrics, 'velo_cache_evictions_total')).toBeGreaterThan(0)
      expect(sample(metrics, 'velo_cache_bytes')).toBeLessThanOrEqual(4096)
      expect((await post(chat, oldest)).headers['x-velo-cache']).toBe('miss')
    })
  })

  describe.skipIf(lacks('redis'))('two velo servers sharing one Redis', () => {
    let redis: RigRedis | undefined
    let first: VeloServer
    let second: VeloServer

    const redisUp = async (velo: VeloServer): Promise<number | undefined> =>
      sample(await get(`${velo.url}/metrics`), 'velo_cache_redis_up')

    beforeAll(async () => {
      redis = await startRigRedis()
      const config = { upstreams: upstreams(), cache: { redis: redis.url } }
      ;[first, second] = await Promise.all([serve(config), serve(config)])
      for (const velo of [first, second]) {
        await waitFor('velo to connect to Redis', async () => (await redisUp(velo)) === 1, 20_000)
      }
    })
    afterAll(async () => {
      await Promise.all([first?.close(), second?.close()])
      await redis?.stop()
    })

    it('answers on the second server what the first one stored, and keeps answering when Redis dies', async () => {
      const body = chatBody('How humid is Manila?')
      const miss = await post(`${first.url}/v1/chat/completions`, body)
      expect(miss.status).toBe(200)
      expect(miss.headers['x-velo-cache']).toBe('miss')
      // The first server stores in Redis after it answered: ask the second until the entry is there.
      let shared: Answer | undefined
      await waitFor('the answer to reach Redis', async () => {
        shared = await post(`${second.url}/v1/chat/completions`, body, { 'cache-control': 'no-store' })
        return shared.headers['x-velo-cache'] === 'hit'
      })
      expect(shared?.text).toBe(miss.text)
      const status = JSON.parse(await get(`${first.url}/velo/status`)) as VeloStatus
      expect(status.cache).toMatchObject({ redis: 'up', redisOutages: 0 })

      await required(redis, 'redis').stop()
      redis = undefined
      for (const velo of [first, second]) {
        await waitFor('velo to notice that Redis is down', async () => (await redisUp(velo)) === 0, 20_000)
      }
      for (const velo of [first, second]) {
        const url = `${velo.url}/v1/chat/completions`
        // Known to both (first: stored it; second: copied it from Redis), now from memory.
        const remembered = await post(url, body)
        expect(remembered.status).toBe(200)
        expect(remembered.headers['x-velo-cache']).toBe('hit')
        expect(remembered.text).toBe(miss.text)
        const fresh = await post(url, chatBody('How humid is Lima?'))
        expect(fresh.status).toBe(200)
        const metrics = await get(`${velo.url}/metrics`)
        expect(sample(metrics, 'velo_cache_redis_up')).toBe(0)
        expect(sample(metrics, 'velo_cache_redis_outages_total')).toBe(1)
        const down = JSON.parse(await get(`${velo.url}/velo/status`)) as VeloStatus
        expect(down.cache).toMatchObject({ redis: 'down', redisOutages: 1 })
      }
    })
  })
})
