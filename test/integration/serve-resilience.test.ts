/**
 * Upstream resilience (issue 9): balancing and fallback across two real llama-servers serving one
 * model, an upstream SIGKILLed mid-stream, and, with a node:http fake for what a real server cannot
 * be made to do (hang, stall mid-stream), the first-token and idle timeouts and the circuit breaker.
 */
import { once } from 'node:events'
import { createServer, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import OpenAI from 'openai'
import type {
  ChatCompletionChunk,
  ChatCompletionCreateParamsStreaming,
} from 'openai/resources/chat/completions'
import type { Stream } from 'openai/streaming'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { LlamaServer } from '../../src/core/engine/llama-server.js'
import type { VeloServer } from '../../src/proxy/server.js'
import type { UpstreamHealth, VeloStatus } from '../../src/proxy/status-types.js'
import { lacks, startRigLlamaServer } from '../helpers/rig.js'
import { getJson, startVelo, waitFor } from './serve-helpers.js'

/** A long generation: the tiny model on the rig takes many seconds for it. */
function longChat(model: string): ChatCompletionCreateParamsStreaming & { ignore_eos: boolean } {
  return {
    model,
    messages: [{ role: 'user', content: 'Write a long story' }],
    max_tokens: 3000,
    ignore_eos: true,
    stream: true,
  }
}

interface OpenStream {
  upstream: string | null
  stream: Stream<ChatCompletionChunk>
  chunks: AsyncIterator<ChatCompletionChunk>
}

/** Start a streamed chat and read its first chunk: from here it holds its upstream. */
async function openStream(openai: OpenAI, model: string): Promise<OpenStream> {
  const { data: stream, response } = await openai.chat.completions.create(longChat(model)).withResponse()
  const chunks = stream[Symbol.asyncIterator]()
  const first = await chunks.next()
  expect(first.done).toBe(false)
  return { upstream: response.headers.get('x-velo-upstream'), stream, chunks }
}

async function upstreamStatus(velo: VeloServer, url: string): Promise<UpstreamHealth> {
  const { body } = await getJson<VeloStatus>(`${velo.url}/velo/status`)
  const found = body.upstreams.find((upstream) => upstream.url === url)
  if (!found) throw new Error(`no upstream ${url} in /velo/status`)
  return found
}

describe.skipIf(lacks('llama-server'))('two llama-servers serving one model', () => {
  const servers = new Map<string, LlamaServer>()
  let velo: VeloServer
  let openai: OpenAI

  beforeAll(async () => {
    const args = ['--ctx-size', '8192']
    const [a, b] = await Promise.all([
      startRigLlamaServer({ alias: 'pair', args }),
      startRigLlamaServer({ alias: 'pair', args }),
    ])
    servers.set('a', a)
    servers.set('b', b)
    velo = await startVelo({
      upstreams: [
        { url: a.url, name: 'a' },
        { url: b.url, name: 'b' },
      ],
    })
    openai = new OpenAI({ baseURL: `${velo.url}/v1`, apiKey: 'unused', maxRetries: 0 })
  }, 180_000)
  afterAll(async () => {
    await velo?.close()
    await Promise.all([...servers.values()].map((server) => server.stop()))
  })

  it('lists the model once, with both upstreams behind it', async () => {
    const models = await openai.models.list()
    expect(models.data.filter((model) => model.id === 'pair')).toHaveLength(1)
    expect(velo.catalog.resolve('pair')?.upstreams.map((upstream) => upstream.name)).toEqual(['a', 'b'])
  })

  it('sends concurrent requests to the upstream with the fewest in flight', async () => {
    const first = await openStream(openai, 'pair')
    const second = await openStream(openai, 'pair')
    expect(new Set([first.upstream, second.upstream])).toEqual(new Set(['a', 'b']))
    for (const url of [servers.get('a')?.url, servers.get('b')?.url]) {
      expect((await upstreamStatus(velo, url ?? '')).outstanding).toBe(1)
    }
    first.stream.controller.abort()
    second.stream.controller.abort()
    await waitFor('both upstreams to be idle', async () => {
      const { body } = await getJson<VeloStatus>(`${velo.url}/velo/status`)
      return body.upstreams.every((upstream) => upstream.outstanding === 0)
    })
  })

  it('ends a stream whose upstream is SIGKILLed with an error, within a second; the next request goes to the other', async () => {
    const open = await openStream(openai, 'pair')
    const victim = servers.get(open.upstream ?? '')
    if (!victim) throw new Error(`unexpected x-velo-upstream ${open.upstream}`)
    const survivor = open.upstream === 'a' ? 'b' : 'a'
    await open.chunks.next()
    process.kill(victim.process.pid, 'SIGKILL')
    const killedAt = performance.now()
    let failure: unknown
    try {
      for (let next = await open.chunks.next(); !next.done; next = await open.chunks.next()) {
        // Tokens already on their way may still arrive; the stream must end with the error.
      }
    } catch (error) {
      failure = error
    }
    const endedAfterMs = performance.now() - killedAt
    expect(failure).toBeInstanceOf(OpenAI.APIError)
    expect((failure as InstanceType<typeof OpenAI.APIError>).message).toMatch(/failed mid-(stream|response)/)
    expect(endedAfterMs).toBeLessThan(1000)

    const health = await request(`${velo.url}/health`)
    expect(health.statusCode).toBe(200)
    await health.body.dump()

    const { data, response } = await openai.chat.completions
      .create({ model: 'pair', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4 })
      .withResponse()
    expect(response.headers.get('x-velo-upstream')).toBe(survivor)
    expect(data.choices).toHaveLength(1)
    // Streams go there too now, and finish.
    const again = await openStream(openai, 'pair')
    expect(again.upstream).toBe(survivor)
    again.stream.controller.abort()
  })
})

/** An OpenAI-compatible server that lists `models` and answers chats as `mode` says. */
interface FakeUpstream {
  url: string
  mode: 'hang' | 'headers' | 'stall' | 'busy' | 'cutoff' | 'answer'
  posts: number
  close(): Promise<void>
}

async function startFakeUpstream(models: string[]): Promise<FakeUpstream> {
  const held = new Set<ServerResponse>()
  const fake: FakeUpstream = {
    url: '',
    mode: 'hang',
    posts: 0,
    async close() {
      for (const res of held) res.destroy()
      server.closeAllConnections()
      server.close()
      await once(server, 'close')
    },
  }
  const server: Server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/v1/models') {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(
        JSON.stringify({
          object: 'list',
          data: models.map((id) => ({ id, object: 'model', owned_by: 'fake' })),
        }),
      )
      return
    }
    if (req.method !== 'POST') {
      res.writeHead(404).end()
      return
    }
    fake.posts++
    req.resume()
    held.add(res)
    res.on('close', () => held.delete(res))
    if (fake.mode === 'hang') return
    if (fake.mode === 'headers') {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.flushHeaders()
      return
    }
    if (fake.mode === 'busy') {
      res.writeHead(503, { 'content-type': 'application/json' })
      res.end(
        JSON.stringify({ error: { message: 'the fake is busy', type: 'unavailable_error', code: 503 } }),
      )
      return
    }
    if (fake.mode === 'cutoff') {
      // A plain answer that breaks off half way: its length promises more than ever comes.
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '200' })
      res.write('{"id":"chatcmpl-fake","object":"chat.completion","choices":[')
      setTimeout(() => res.socket?.destroy(), 20)
      return
    }
    if (fake.mode === 'stall') {
      const chunk = {
        id: 'chatcmpl-fake',
        object: 'chat.completion.chunk',
        created: 0,
        model: models[0],
        choices: [{ index: 0, delta: { role: 'assistant', content: 'Once' }, finish_reason: null }],
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.write(`data: ${JSON.stringify(chunk)}\n\n`)
      return
    }
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(
      JSON.stringify({
        id: 'chatcmpl-fake',
        object: 'chat.completion',
        created: 0,
        model: models[0],
        choices: [{ index: 0, message: { role: 'assistant', content: 'Hello' }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
      }),
    )
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return fake
}

const chatBody = (model: string) => ({
  model,
  messages: [{ role: 'user' as const, content: 'Hi' }],
  max_tokens: 4,
})

async function post(url: string, body: unknown) {
  const response = await request(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  const text = await response.body.text()
  return {
    status: response.statusCode,
    headers: response.headers,
    body: JSON.parse(text) as { error?: { code?: string; message?: string } },
  }
}

describe('a hung upstream', () => {
  let fake: FakeUpstream
  let velo: VeloServer
  let openai: OpenAI

  beforeAll(async () => {
    fake = await startFakeUpstream(['slow'])
    velo = await startVelo({
      upstreams: [{ url: fake.url, name: 'fake', kind: 'openai' }],
      resilience: {
        timeouts: { firstToken: '300ms', idle: '300ms' },
        retries: { max: 1, backoff: '10ms', maxBackoff: '20ms' },
        breaker: { failures: 3, cooldown: '1s' },
      },
    })
    openai = new OpenAI({ baseURL: `${velo.url}/v1`, apiKey: 'unused', maxRetries: 0 })
  })
  afterAll(async () => {
    await velo?.close()
    await fake?.close()
  })

  it('times out waiting for the first token with a 504, after one retry', async () => {
    const response = await post(`${velo.url}/v1/chat/completions`, chatBody('slow'))
    expect(response.status).toBe(504)
    expect(response.body.error?.code).toBe('VELO_UPSTREAM_TIMEOUT')
    expect(response.body.error?.message).toMatch(/first-token timeout/)
    expect(fake.posts).toBe(2)
    expect(await upstreamStatus(velo, fake.url)).toMatchObject({ breaker: 'closed', consecutiveFailures: 2 })
  })

  it('opens the breaker after N consecutive failures (a stream times out before its first byte too)', async () => {
    const postsBefore = fake.posts
    const failure = await openai.chat.completions
      .create({ ...chatBody('slow'), stream: true })
      .then(() => undefined)
      .catch((error: unknown) => error)
    expect(failure).toBeInstanceOf(OpenAI.APIError)
    expect((failure as InstanceType<typeof OpenAI.APIError>).status).toBe(504)
    // The third failure opened the breaker: the retry found nowhere to go.
    expect(fake.posts - postsBefore).toBe(1)
    expect(await upstreamStatus(velo, fake.url)).toMatchObject({ breaker: 'open', consecutiveFailures: 3 })
  })

  it('rejects at once while open: 503 with Retry-After, nothing sent upstream', async () => {
    const postsBefore = fake.posts
    const response = await post(`${velo.url}/v1/chat/completions`, chatBody('slow'))
    expect(response.status).toBe(503)
    expect(response.body.error?.code).toBe('VELO_UPSTREAM_UNAVAILABLE')
    expect(Number(response.headers['retry-after'])).toBeGreaterThanOrEqual(1)
    expect(fake.posts).toBe(postsBefore)
    const metrics = await (await request(`${velo.url}/metrics`)).body.text()
    expect(metrics).toMatch(/velo_upstream_breaker_state\{upstream="fake"\} 2/)
  })

  it('closes the breaker after a successful half-open probe', async () => {
    fake.mode = 'answer'
    await waitFor(
      'the breaker to cool down',
      async () => (await upstreamStatus(velo, fake.url)).breaker === 'half-open',
    )
    const response = await post(`${velo.url}/v1/chat/completions`, chatBody('slow'))
    expect(response.status).toBe(200)
    expect(await upstreamStatus(velo, fake.url)).toMatchObject({ breaker: 'closed', consecutiveFailures: 0 })
  })

  it('ends a stream that stalls after its first token with an error event (idle timeout)', async () => {
    fake.mode = 'stall'
    const stream = await openai.chat.completions.create({ ...chatBody('slow'), stream: true })
    const seen: string[] = []
    let failure: unknown
    try {
      for await (const chunk of stream) seen.push(chunk.choices[0]?.delta.content ?? '')
    } catch (error) {
      failure = error
    }
    expect(seen).toEqual(['Once'])
    expect(failure).toBeInstanceOf(OpenAI.APIError)
    expect((failure as InstanceType<typeof OpenAI.APIError>).message).toMatch(/resilience\.timeouts\.idle/)
  })
})

describe('an upstream answering 503, or only its headers', () => {
  let fake: FakeUpstream
  let velo: VeloServer

  beforeAll(async () => {
    fake = await startFakeUpstream(['busy'])
    fake.mode = 'busy'
    velo = await startVelo({
      upstreams: [{ url: fake.url, name: 'fake', kind: 'openai' }],
      resilience: {
        timeouts: { idle: '300ms' },
        retries: { max: 2, backoff: '10ms', maxBackoff: '40ms' },
        breaker: { failures: 10 },
      },
    })
  })
  afterAll(async () => {
    await velo?.close()
    await fake?.close()
  })

  it('is retried with backoff, then its own answer goes to the client', async () => {
    const response = await post(`${velo.url}/v1/chat/completions`, chatBody('busy'))
    expect(fake.posts).toBe(3)
    expect(response.status).toBe(503)
    expect(response.body.error?.message).toBe('the fake is busy')
    expect(await upstreamStatus(velo, fake.url)).toMatchObject({ breaker: 'closed', consecutiveFailures: 3 })
  })

  it('is not retried once it answers: a success resets the failure count', async () => {
    fake.mode = 'answer'
    const postsBefore = fake.posts
    const response = await post(`${velo.url}/v1/chat/completions`, chatBody('busy'))
    expect(response.status).toBe(200)
    expect(fake.posts - postsBefore).toBe(1)
    expect(await upstreamStatus(velo, fake.url)).toMatchObject({ breaker: 'closed', consecutiveFailures: 0 })
  })

  it('sends a plain answer cut off part way again, and answers 502 naming the cut, never a cut-off 200', async () => {
    fake.mode = 'cutoff'
    const postsBefore = fake.posts
    const response = await post(`${velo.url}/v1/chat/completions`, chatBody('busy'))
    expect(response.status).toBe(502)
    expect(response.body.error?.code).toBe('VELO_UPSTREAM_ERROR')
    expect(response.body.error?.message).toMatch(/failed mid-response \(after status 200\)/)
    // Nothing had gone to the client: retried like an answer that never came (retries.max 2).
    expect(fake.posts - postsBefore).toBe(3)
    fake.mode = 'answer'
  })

  it('holds back the headers until the first byte: a stream that never starts is a 504, retried', async () => {
    fake.mode = 'headers'
    const postsBefore = fake.posts
    const response = await post(`${velo.url}/v1/chat/completions`, { ...chatBody('busy'), stream: true })
    expect(response.status).toBe(504)
    expect(response.body.error?.code).toBe('VELO_UPSTREAM_TIMEOUT')
    expect(response.body.error?.message).toMatch(/idle timeout/)
    expect(fake.posts - postsBefore).toBe(3)
  })
})

describe.skipIf(lacks('llama-server'))('a hung upstream beside a working one', () => {
  let fake: FakeUpstream
  let llama: LlamaServer
  let velo: VeloServer

  beforeAll(async () => {
    ;[fake, llama] = await Promise.all([startFakeUpstream(['both']), startRigLlamaServer({ alias: 'both' })])
    velo = await startVelo({
      upstreams: [
        { url: fake.url, name: 'fake', kind: 'openai' },
        { url: llama.url, name: 'llama' },
      ],
      resilience: {
        // Long enough for the real llama-server's answer on a busy machine.
        timeouts: { firstToken: '3s' },
        retries: { max: 0 },
        breaker: { failures: 2, cooldown: '10m' },
      },
    })
  }, 180_000)
  afterAll(async () => {
    await velo?.close()
    await fake?.close()
    await llama?.stop()
  })

  it('falls back to the working upstream when the hung one times out, then skips the hung one', async () => {
    for (let i = 0; i < 2; i++) {
      const response = await post(`${velo.url}/v1/chat/completions`, chatBody('both'))
      expect(response.status).toBe(200)
      expect(response.headers['x-velo-upstream']).toBe('llama')
    }
    expect(fake.posts).toBe(2)
    expect(await upstreamStatus(velo, fake.url)).toMatchObject({ breaker: 'open' })
    const response = await post(`${velo.url}/v1/chat/completions`, chatBody('both'))
    expect(response.status).toBe(200)
    expect(response.headers['x-velo-upstream']).toBe('llama')
    expect(fake.posts).toBe(2)
  })
})
