import { Redis } from 'ioredis'
import { Ollama } from 'ollama'
import OpenAI from 'openai'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { VeloConfigInput } from '../../src/core/config/schema.js'
import type { LlamaServer } from '../../src/core/engine/llama-server.js'
import { createKey } from '../../src/proxy/auth/keys.js'
import type { VeloServer } from '../../src/proxy/server.js'
import { lacks, type RigRedis, startRigLlamaServer, startRigRedis } from '../helpers/rig.js'
import { startVelo } from './serve-helpers.js'

/** velo with API keys in front of the rig's llama-server, called by the official clients. */

const hashed = createKey()

function openai(velo: VeloServer, apiKey: string): OpenAI {
  return new OpenAI({ baseURL: `${velo.url}/v1`, apiKey, maxRetries: 0 })
}

function chat(client: OpenAI, maxTokens = 4) {
  return client.chat.completions.create({
    model: 'velo-tiny',
    messages: [{ role: 'user', content: 'Say hello.' }],
    max_tokens: maxTokens,
    temperature: 0.7,
  })
}

async function rejection(promise: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  try {
    await promise
  } catch (error) {
    if (error instanceof OpenAI.APIError) return error
    throw error
  }
  throw new Error('expected the request to be refused')
}

async function get(url: string, key?: string) {
  const response = await request(url, { headers: key ? { authorization: `Bearer ${key}` } : {} })
  const text = await response.body.text()
  return { status: response.statusCode, headers: response.headers, text }
}

describe.skipIf(lacks('llama-server'))('velo serve with API keys', () => {
  let upstream: LlamaServer
  let velo: VeloServer
  beforeAll(async () => {
    upstream = await startRigLlamaServer()
    velo = await startVelo({
      upstreams: [{ url: `${upstream.url}/v1` }],
      cache: { exact: { enabled: false } },
      auth: {
        keys: [
          { key: 'sk-alice', name: 'alice', models: ['velo-*'] },
          { key: 'sk-ops', name: 'ops', scope: 'admin' },
          { key: hashed.hashed, name: 'bob', models: ['other-*'] },
          { key: 'sk-limited', name: 'limited', rpm: 3 },
          { key: 'sk-tokens', name: 'tokens', tpm: 20 },
        ],
      },
    })
  }, 120_000)
  afterAll(async () => {
    await velo?.close()
    await upstream?.stop()
  })

  it('answers 401 in OpenAI’s shape to a missing or wrong key, and serves a right one', async () => {
    const missing = await request(`${velo.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'velo-tiny', messages: [{ role: 'user', content: 'hi' }] }),
    })
    expect(missing.statusCode).toBe(401)
    expect(missing.headers['www-authenticate']).toBe('Bearer realm="velo"')
    expect(await missing.body.json()).toMatchObject({
      error: {
        type: 'authentication_error',
        code: 'VELO_UNAUTHORIZED',
        message: expect.stringMatching(/^missing API key/),
      },
    })
    const wrong = await rejection(chat(openai(velo, 'sk-wrong')))
    expect(wrong).toBeInstanceOf(OpenAI.AuthenticationError)
    expect(wrong.message).toMatch(/invalid API key/)
    const answer = await chat(openai(velo, 'sk-alice'))
    expect(answer.choices[0]?.message.content?.length).toBeGreaterThan(0)
    // A key configured only by its hash works the same (bob may not use this model, which says so).
    const bob = await rejection(chat(openai(velo, hashed.key)))
    expect(bob).toBeInstanceOf(OpenAI.PermissionDeniedError)
    expect(bob.message).toMatch(/key "bob" may not use model velo-tiny/)
  })

  it('keeps /health and /ready open, asks a key for /metrics and an admin key for /velo/*', async () => {
    expect((await get(`${velo.url}/health`)).status).toBe(200)
    expect((await get(`${velo.url}/ready`)).status).toBe(200)
    expect((await get(`${velo.url}/metrics`)).status).toBe(401)
    expect((await get(`${velo.url}/metrics`, 'sk-alice')).status).toBe(200)
    const forbidden = await get(`${velo.url}/velo/status`, 'sk-alice')
    expect(forbidden.status).toBe(403)
    expect(JSON.parse(forbidden.text)).toMatchObject({ error: { code: 'VELO_FORBIDDEN' } })
    expect((await get(`${velo.url}/velo/status`, 'sk-ops')).status).toBe(200)
    const unload = await request(`${velo.url}/velo/models/velo-tiny/unload`, {
      method: 'POST',
      headers: { authorization: 'Bearer sk-alice' },
    })
    expect(unload.statusCode).toBe(403)
    await unload.body.dump()
  })

  it('lists only the models a key may use', async () => {
    expect((await openai(velo, 'sk-alice').models.list()).data.map((model) => model.id)).toEqual([
      'velo-tiny',
    ])
    expect((await openai(velo, hashed.key).models.list()).data).toEqual([])
  })

  it('speaks to the ollama client: its key in a header, refusals as Ollama errors', async () => {
    const allowed = new Ollama({ host: velo.url, headers: { authorization: 'Bearer sk-ops' } })
    const answer = await allowed.chat({
      model: 'velo-tiny',
      messages: [{ role: 'user', content: 'hi' }],
      options: { num_predict: 4 },
    })
    expect(answer.message.content.length).toBeGreaterThan(0)
    const anonymous = new Ollama({ host: velo.url })
    await expect(anonymous.list()).rejects.toMatchObject({
      status_code: 401,
      error: expect.stringMatching(/missing API key/),
    })
  })

  it('answers 429 with Retry-After once a key is over its requests per minute', async () => {
    const client = openai(velo, 'sk-limited')
    const remaining: (string | null)[] = []
    for (let index = 0; index < 3; index += 1) {
      const { response } = await chat(client).withResponse()
      remaining.push(response.headers.get('x-ratelimit-remaining-requests'))
    }
    expect(remaining).toEqual(['2', '1', '0'])
    const refused = await rejection(chat(client))
    expect(refused).toBeInstanceOf(OpenAI.RateLimitError)
    expect(refused.message).toMatch(/key "limited" is over its limit of 3 requests per minute/)
    // 3 a minute: the next place is about 20 s away.
    expect(Number(refused.headers?.get('retry-after'))).toBeGreaterThanOrEqual(15)
    expect(Number(refused.headers?.get('retry-after'))).toBeLessThanOrEqual(20)
    expect(refused.headers?.get('x-ratelimit-limit-requests')).toBe('3')
  })

  it('charges the tokens a request used and refuses the key while it is over its tokens per minute', async () => {
    const client = openai(velo, 'sk-tokens')
    const first = await chat(client, 16)
    const used = (first.usage?.prompt_tokens ?? 0) + (first.usage?.completion_tokens ?? 0)
    expect(used).toBeGreaterThan(20)
    const refused = await rejection(chat(client))
    expect(refused).toBeInstanceOf(OpenAI.RateLimitError)
    expect(refused.message).toMatch(/over its limit of 20 tokens per minute/)
    expect(Number(refused.headers?.get('retry-after'))).toBeGreaterThanOrEqual(1)
  })
})

describe.skipIf(lacks('llama-server') || lacks('redis'))('two velo instances on one Redis', () => {
  let upstream: LlamaServer
  let redis: RigRedis
  const velos: VeloServer[] = []
  beforeAll(async () => {
    upstream = await startRigLlamaServer()
    redis = await startRigRedis()
    const config: VeloConfigInput = {
      upstreams: [{ url: `${upstream.url}/v1` }],
      cache: { exact: { enabled: false } },
      auth: { keys: [{ key: 'sk-shared', name: 'team', rpm: 4 }], redis: redis.url },
    }
    velos.push(await startVelo(config), await startVelo(config))
  }, 120_000)
  afterAll(async () => {
    await Promise.all(velos.map((velo) => velo.close()))
    await redis?.stop()
    await upstream?.stop()
  })

  it('enforce one shared limit per key', async () => {
    const [a, b] = velos
    if (!a || !b) throw new Error('two velos expected')
    const clients = [openai(a, 'sk-shared'), openai(b, 'sk-shared')]
    // Four a minute between them: two through each.
    for (const client of [...clients, ...clients]) await chat(client)
    for (const client of clients) {
      const refused = await rejection(chat(client))
      expect(refused).toBeInstanceOf(OpenAI.RateLimitError)
      expect(refused.message).toMatch(/key "team" is over its limit of 4 requests per minute/)
    }
    // The buckets are under the key's name; the secret is not in Redis.
    const inspect = new Redis(redis.url)
    try {
      const keys = await inspect.keys('velo:auth:v1:*')
      expect(keys).toEqual(['velo:auth:v1:team:rpm'])
      expect(keys.join(' ')).not.toContain('sk-shared')
    } finally {
      inspect.disconnect()
    }
  })
})
