/**
 * velo serve's request path against node:http fakes, for what real engines do not do on demand:
 * die mid-stream, send garbage, hang, refuse connections. Plus the scheduler and cache seams with
 * small in-test implementations of their interfaces.
 */
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http'
import type { AddressInfo } from 'node:net'
import OpenAI from 'openai'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/core/config/load.js'
import type { VeloConfigInput } from '../../src/core/config/schema.js'
import { freePort } from '../../src/core/process/supervise.js'
import type {
  AdmissionLease,
  AdmissionRequest,
  CachedResponse,
  CacheLookup,
  ResponseCache,
  Scheduler,
} from '../../src/proxy/pipeline-types.js'
import { createVeloServer, type VeloServer, type VeloServerOptions } from '../../src/proxy/server.js'
import type { VeloStatus } from '../../src/proxy/status-types.js'

interface Fake {
  url: string
  server: Server
  /** Resolves when a request to the `hang` model loses its connection (velo aborted it). */
  hangClosed: Promise<void>
  requests: { path: string; body: Record<string, unknown> }[]
}

function chunk(content: string): string {
  return `data: ${JSON.stringify({
    id: 'x',
    object: 'chat.completion.chunk',
    created: 1,
    model: 'm',
    choices: [{ index: 0, delta: { content }, finish_reason: null }],
  })}\n\n`
}

/** An OpenAI-compatible server whose behaviour is picked by the model name. */
async function startFake(): Promise<Fake> {
  let hangClosed: () => void = () => {}
  const requests: Fake['requests'] = []
  const fake: Fake = {
    url: '',
    server: createServer(),
    hangClosed: new Promise((resolve) => {
      hangClosed = resolve
    }),
    requests,
  }
  fake.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    let text = ''
    req.on('data', (part: Buffer) => {
      text += part.toString()
    })
    req.on('end', () => {
      if (req.url?.startsWith('/v1/audio/')) {
        requests.push({ path: req.url, body: { bytes: text.length } })
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(
          JSON.stringify({ text: `${req.headers['content-type']?.split(';')[0]} ${text.length} bytes` }),
        )
        return
      }
      if (req.method === 'GET') {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ object: 'list', data: [] }))
        return
      }
      const body = JSON.parse(text) as Record<string, unknown>
      requests.push({ path: req.url ?? '', body })
      const model = String(body['model'])
      const sse = { 'content-type': 'text/event-stream' }
      switch (model) {
        case 'dies':
          res.writeHead(200, sse)
          res.write(chunk('one '))
          res.write(chunk('two '))
          setTimeout(() => res.socket?.destroy(), 20)
          return
        case 'garbage':
          res.writeHead(200, sse)
          res.write(chunk('one '))
          res.end('data: {not json\n\n')
          return
        case 'hang':
          res.writeHead(200, sse)
          res.write(chunk('first '))
          res.on('close', () => hangClosed())
          return
        case 'slow':
          setTimeout(() => {
            res.writeHead(200, { 'content-type': 'application/json' })
            res.end(JSON.stringify({ id: 'x', object: 'chat.completion', created: 1, model, choices: [] }))
          }, 300)
          return
        case 'refuses':
          res.writeHead(400, { 'content-type': 'application/json' })
          res.end(
            JSON.stringify({ error: { message: 'bad thing in messages', type: 'invalid_request_error' } }),
          )
          return
        default: {
          if (body['stream'] === true) {
            res.writeHead(200, sse)
            res.write(chunk('hel'))
            res.write(chunk('lo'))
            res.write(
              `data: ${JSON.stringify({
                id: 'x',
                object: 'chat.completion.chunk',
                created: 1,
                model,
                choices: [{ index: 0, delta: {}, finish_reason: 'stop' }],
                usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
              })}\n\n`,
            )
            res.end('data: [DONE]\n\n')
            return
          }
          const reply = {
            id: 'chatcmpl-1',
            object: 'chat.completion',
            created: 1,
            model,
            choices: [{ index: 0, message: { role: 'assistant', content: 'hello' }, finish_reason: 'stop' }],
            usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 },
          }
          res.writeHead(200, { 'content-type': 'application/json' })
          res.end(JSON.stringify(reply))
        }
      }
    })
  })
  await new Promise<void>((resolve) => fake.server.listen(0, '127.0.0.1', () => resolve()))
  fake.url = `http://127.0.0.1:${(fake.server.address() as AddressInfo).port}`
  return fake
}

async function velo(config: VeloConfigInput, options: Partial<VeloServerOptions> = {}): Promise<VeloServer> {
  const server = createVeloServer({
    config: parseConfig({ ...config, server: { port: 0, ...config.server } }),
    version: 'test',
    refreshIntervalMs: 0,
    ...options,
  })
  await server.start()
  return server
}

async function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  })
  return { status: response.status, headers: response.headers, text: await response.text() }
}

const MODELS = ['ok', 'dies', 'garbage', 'hang', 'refuses', 'slow']

describe('velo serve against faulty upstreams', () => {
  let fake: Fake
  let server: VeloServer
  let deadPort: number

  beforeAll(async () => {
    fake = await startFake()
    deadPort = await freePort()
    server = await velo({
      server: { bodyLimit: 2048, cors: ['http://app.example'] },
      upstreams: [
        { url: `${fake.url}/v1`, kind: 'openai', models: MODELS },
        { url: `http://127.0.0.1:${deadPort}`, kind: 'openai', models: ['ghost'], name: 'gpu-box' },
      ],
    })
  })
  afterAll(async () => {
    await server?.close()
    await new Promise((resolve) => fake.server.close(resolve))
  })

  it('passes a same-API request through and echoes x-request-id', async () => {
    const { status, headers, text } = await post(
      `${server.url}/v1/chat/completions`,
      { model: 'ok', messages: [{ role: 'user', content: 'hi' }] },
      { 'x-request-id': 'req-42' },
    )
    expect(status).toBe(200)
    expect(JSON.parse(text).choices[0].message.content).toBe('hello')
    expect(headers.get('x-request-id')).toBe('req-42')
    expect(headers.get('x-velo-upstream')).toBe(`${fake.url}/v1`)
    expect(fake.requests.at(-1)?.path).toBe('/v1/chat/completions')
  })

  it('ends a stream with an error event when the upstream dies mid-stream', async () => {
    const { status, text } = await post(`${server.url}/v1/chat/completions`, {
      model: 'dies',
      stream: true,
      messages: [{ role: 'user', content: 'hi' }],
    })
    expect(status).toBe(200)
    expect(text).toContain('"content":"two "')
    const last = text.trim().split('\n\n').at(-1) ?? ''
    expect(last).toMatch(/^data: \{"error":\{"message":"upstream .* failed mid-response/)
  })

  it('answers 502, not a cut-off 200, when the upstream dies part way through a plain answer', async () => {
    const { status, text } = await post(`${server.url}/v1/chat/completions`, {
      model: 'dies',
      messages: [{ role: 'user', content: 'hi' }],
    })
    expect(status).toBe(502)
    expect(JSON.parse(text).error.message).toMatch(/^upstream .* failed mid-response/)
  })

  it('ends a translated stream with an Ollama error line when the upstream sends garbage', async () => {
    const { status, text } = await post(`${server.url}/api/chat`, {
      model: 'garbage',
      messages: [{ role: 'user', content: 'hi' }],
    })
    expect(status).toBe(200)
    const lines = text.trim().split('\n')
    expect(JSON.parse(lines[0] ?? '{}').message.content).toBe('one ')
    expect(JSON.parse(lines.at(-1) ?? '{}').error).toMatch(/not JSON/)
  })

  it('aborts the upstream request as soon as the client goes away', async () => {
    await new Promise<void>((resolve, reject) => {
      const req = httpRequest(`${server.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
      })
      req.on('response', (res) => {
        res.once('data', () => {
          req.destroy()
          resolve()
        })
      })
      req.on('error', (error) => {
        if (!req.destroyed) reject(error)
      })
      req.end(JSON.stringify({ model: 'hang', stream: true, messages: [{ role: 'user', content: 'hi' }] }))
    })
    await fake.hangClosed
    const status = (await (await fetch(`${server.url}/velo/status`)).json()) as VeloStatus
    expect(status.recent.find((entry) => entry.model === 'hang')?.status).toBe(499)
  })

  it('passes an upstream 400 through to a same-API client, and translates it for the other API', async () => {
    const same = await post(`${server.url}/v1/chat/completions`, {
      model: 'refuses',
      messages: [{ role: 'user', content: 'hi' }],
    })
    expect(same.status).toBe(400)
    expect(JSON.parse(same.text).error.message).toBe('bad thing in messages')
    const cross = await post(`${server.url}/api/chat`, {
      model: 'refuses',
      stream: false,
      messages: [{ role: 'user', content: 'hi' }],
    })
    expect(cross.status).toBe(400)
    expect(JSON.parse(cross.text).error).toMatch(/answered 400 .*bad thing in messages/)
  })

  it('answers 502 naming the upstream that does not answer, in each family’s body', async () => {
    const openai = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 })
    const error = await openai.chat.completions
      .create({ model: 'ghost', messages: [{ role: 'user', content: 'hi' }] })
      .catch((e: unknown) => e)
    expect(error).toBeInstanceOf(OpenAI.APIError)
    expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(502)
    expect((error as Error).message).toMatch(/gpu-box is unreachable.*ECONNREFUSED/)
    const ollama = await post(`${server.url}/api/generate`, { model: 'ghost', prompt: 'hi' })
    expect(ollama.status).toBe(502)
    expect(JSON.parse(ollama.text).error).toMatch(/gpu-box/)
  })

  it('refuses a body over the limit with 413', async () => {
    const { status, text } = await post(`${server.url}/api/chat`, {
      model: 'ok',
      messages: [{ role: 'user', content: 'x'.repeat(4096) }],
    })
    expect(status).toBe(413)
    expect(JSON.parse(text).error).toMatch(/larger than 2048 bytes/)
  })

  it('answers unknown routes with 404 in the family of the path', async () => {
    const openai = await fetch(`${server.url}/v1/nothing`)
    expect(openai.status).toBe(404)
    expect(((await openai.json()) as { error: { code: string } }).error.code).toBe('VELO_NOT_FOUND')
    const ollama = await fetch(`${server.url}/api/nothing`)
    expect(typeof ((await ollama.json()) as { error: unknown }).error).toBe('string')
    const wrongMethod = await fetch(`${server.url}/v1/chat/completions`)
    expect(wrongMethod.status).toBe(405)
  })

  it('holds requests while a model is paused and lets them go on resume', async () => {
    const paused = await post(`${server.url}/velo/models/ok/pause`, {})
    expect(paused.status).toBe(200)
    const pending = post(`${server.url}/v1/chat/completions`, {
      model: 'ok',
      messages: [{ role: 'user', content: 'hi' }],
    })
    for (;;) {
      const status = (await (await fetch(`${server.url}/velo/status`)).json()) as VeloStatus
      const ok = status.models.find((model) => model.id === 'ok')
      if (ok?.queueDepth === 1) {
        expect(ok.paused).toBe(true)
        break
      }
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    await post(`${server.url}/velo/models/ok/resume`, {})
    expect((await pending).status).toBe(200)
  })

  it('refuses to load or unload a model it does not manage (409)', async () => {
    const { status, text } = await post(`${server.url}/velo/models/ok/unload`, {})
    expect(status).toBe(409)
    expect(JSON.parse(text).error.message).toMatch(/managed models/)
  })

  it('answers CORS preflights for configured origins', async () => {
    const response = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'OPTIONS',
      headers: { origin: 'http://app.example', 'access-control-request-headers': 'content-type' },
    })
    expect(response.status).toBe(204)
    expect(response.headers.get('access-control-allow-origin')).toBe('http://app.example')
  })
})

describe('audio and shutdown', () => {
  let fake: Fake

  beforeAll(async () => {
    fake = await startFake()
  })
  afterAll(async () => {
    await new Promise((resolve) => fake.server.close(resolve))
  })

  it('streams multipart audio to the speech upstream as it came', async () => {
    const server = await velo({ speech: { url: fake.url } })
    try {
      const form = new FormData()
      form.append('model', 'whisper-1')
      form.append('file', new Blob([new Uint8Array(5000)]), 'clip.wav')
      const response = await fetch(`${server.url}/v1/audio/transcriptions`, { method: 'POST', body: form })
      expect(response.status).toBe(200)
      const { text } = (await response.json()) as { text: string }
      expect(text).toMatch(/^multipart\/form-data \d+ bytes$/)
      expect(Number(text.split(' ')[1])).toBeGreaterThan(5000)
    } finally {
      await server.close()
    }
  })

  it('streams multipart audio for translation to the speech upstream’s translation route', async () => {
    const server = await velo({ speech: { url: fake.url } })
    try {
      const form = new FormData()
      form.append('model', 'whisper-1')
      form.append('file', new Blob([new Uint8Array(3000)]), 'clip.wav')
      const response = await fetch(`${server.url}/v1/audio/translations`, { method: 'POST', body: form })
      expect(response.status).toBe(200)
      expect(response.headers.get('x-velo-upstream')).toBe(fake.url)
      const { text } = (await response.json()) as { text: string }
      expect(text).toMatch(/^multipart\/form-data \d+ bytes$/)
      expect(Number(text.split(' ')[1])).toBeGreaterThan(3000)
      expect(fake.requests.at(-1)?.path).toBe('/v1/audio/translations')
    } finally {
      await server.close()
    }
  })

  it('counts a chunked audio upload (no content-length) against the limit: under it passes', async () => {
    const server = await velo({ speech: { url: fake.url }, server: { audioBodyLimit: 4096 } })
    try {
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(new Uint8Array(1500))
          controller.enqueue(new Uint8Array(1500))
          controller.close()
        },
      })
      const response = await fetch(`${server.url}/v1/audio/transcriptions`, {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream' },
        body,
        duplex: 'half',
      } as RequestInit)
      expect(response.status).toBe(200)
      expect(((await response.json()) as { text: string }).text).toBe('application/octet-stream 3000 bytes')
    } finally {
      await server.close()
    }
  })

  it('answers 413 (OpenAI error body) to a chunked audio upload once it passes the limit, without waiting for its end', async () => {
    const server = await velo({ speech: { url: fake.url }, server: { audioBodyLimit: 4096 } })
    const before = fake.requests.length
    try {
      // An upload that never ends: only counting the bytes as they come can refuse it.
      const answer = await new Promise<{ status: number; text: string; chunked: boolean }>(
        (resolve, reject) => {
          const req = httpRequest(`${server.url}/v1/audio/transcriptions`, {
            method: 'POST',
            headers: { 'content-type': 'application/octet-stream' },
          })
          const writer = setInterval(() => req.write(Buffer.alloc(1024)), 5)
          req.on('response', (res) => {
            clearInterval(writer)
            let text = ''
            res.on('data', (part: Buffer) => {
              text += part.toString()
            })
            res.on('end', () => {
              resolve({
                status: res.statusCode ?? 0,
                text,
                chunked: req.getHeader('content-length') === undefined,
              })
              req.destroy()
            })
          })
          req.on('error', (error) => {
            clearInterval(writer)
            if (!req.destroyed) reject(error)
          })
        },
      )
      expect(answer.chunked).toBe(true)
      expect(answer.status).toBe(413)
      const { error } = JSON.parse(answer.text) as { error: { message: string; type: string; code: string } }
      expect(error.type).toBe('invalid_request_error')
      expect(error.code).toBe('VELO_PAYLOAD_TOO_LARGE')
      expect(error.message).toMatch(/audio body is larger than 4096 bytes/)
      // The upload was cut: the speech upstream never got a whole request to answer.
      expect(fake.requests.slice(before)).toEqual([])
    } finally {
      await server.close()
    }
  })

  it('answers 404 for audio when no speech upstream is configured', async () => {
    const server = await velo({})
    try {
      const response = await fetch(`${server.url}/v1/audio/translations`, { method: 'POST', body: 'x' })
      expect(response.status).toBe(404)
      expect(((await response.json()) as { error: { message: string } }).error.message).toMatch(
        /speech upstream/,
      )
    } finally {
      await server.close()
    }
  })

  it('lets an in-flight request finish on close, then refuses connections', async () => {
    const server = await velo({ upstreams: [{ url: fake.url, kind: 'openai', models: MODELS }] })
    const inFlight = post(`${server.url}/v1/chat/completions`, {
      model: 'slow',
      messages: [{ role: 'user', content: 'hi' }],
    })
    while (fake.requests.at(-1)?.body['model'] !== 'slow')
      await new Promise((resolve) => setTimeout(resolve, 10))
    const closed = server.close()
    expect((await inFlight).status).toBe(200)
    await closed
    await expect(fetch(`${server.url}/health`)).rejects.toThrow()
  })

  it('waits at most server.shutdownTimeout for a hung request, then cuts it and its upstream request', async () => {
    const server = await velo({
      server: { shutdownTimeout: '300ms' },
      upstreams: [{ url: fake.url, kind: 'openai', models: MODELS }],
    })
    // A stream whose upstream sends one chunk and then nothing: it would never finish on its own.
    const { received, ended } = await new Promise<{ received: () => string; ended: Promise<void> }>(
      (resolve, reject) => {
        const req = httpRequest(`${server.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
        })
        req.on('response', (res) => {
          let text = ''
          const ended = new Promise<void>((done) => res.once('close', () => done()))
          res.on('data', (part: Buffer) => {
            text += part.toString()
            resolve({ received: () => text, ended })
          })
        })
        req.on('error', reject)
        req.end(JSON.stringify({ model: 'hang', stream: true, messages: [{ role: 'user', content: 'hi' }] }))
      },
    )
    const started = performance.now()
    await server.close()
    // Generous: the wait is 300 ms, the margin is for a loaded machine.
    expect(performance.now() - started).toBeLessThan(300 + 3000)
    await ended
    expect(received()).toContain('"content":"first "')
    expect(received()).not.toContain('[DONE]')
    await fake.hangClosed
  })
})

describe('the scheduler and cache seams', () => {
  let fake: Fake
  let server: VeloServer
  const acquired: AdmissionRequest[] = []
  let released = 0
  const stored: CachedResponse[] = []

  const scheduler: Scheduler = {
    async acquire(request) {
      acquired.push(request)
      const lease: AdmissionLease = {
        queueMs: 42,
        slot: undefined,
        release: () => {
          released++
        },
      }
      return lease
    },
    setCapacity() {},
    pause() {},
    resume() {},
    snapshot: () => ({ queueDepth: 0, running: 0, capacity: 4, paused: false }),
  }
  const cache: ResponseCache = {
    async lookup(route, body): Promise<CacheLookup> {
      const content = JSON.stringify((body as { messages?: unknown }).messages)
      if (content.includes('cached')) {
        return {
          key: 'k1',
          outcome: 'hit',
          response: {
            status: 200,
            contentType: 'application/json',
            body: '{"from":"cache"}',
            chunks: undefined,
          },
        }
      }
      return { key: `${route}:${content}`, outcome: 'miss', response: undefined }
    },
    async store(_lookup, response) {
      stored.push(response)
    },
    async clear() {
      return stored.length
    },
    stats: () => ({ hits: 1, semanticHits: 0, misses: 3, entries: stored.length, bytes: 10 }),
  }

  beforeAll(async () => {
    fake = await startFake()
    server = await velo(
      { upstreams: [{ url: fake.url, kind: 'openai', models: MODELS }] },
      { scheduler, cache },
    )
  })
  afterEach(() => {
    acquired.length = 0
    released = 0
    stored.length = 0
  })
  afterAll(async () => {
    await server?.close()
    await new Promise((resolve) => fake.server.close(resolve))
  })

  it('admits through the scheduler, reports its queue time, releases once, and stores the answer', async () => {
    const { status, headers } = await post(
      `${server.url}/v1/chat/completions`,
      { model: 'ok', messages: [{ role: 'user', content: 'hi' }] },
      { 'x-velo-priority': '5' },
    )
    expect(status).toBe(200)
    expect(acquired[0]).toMatchObject({ model: 'ok', priority: 5 })
    expect(acquired[0]?.prefixKeys?.().length).toBeGreaterThan(0)
    expect(headers.get('x-velo-queue-ms')).toBe('42')
    expect(headers.get('x-velo-cache')).toBe('miss')
    expect(released).toBe(1)
    await new Promise((resolve) => setTimeout(resolve, 10))
    expect(stored[0]?.body).toContain('"hello"')
  })

  it('stores a translated stream frame by frame', async () => {
    const { text } = await post(`${server.url}/api/chat`, {
      model: 'ok',
      messages: [{ role: 'user', content: 'hi' }],
    })
    expect(JSON.parse(text.trim().split('\n').at(-1) ?? '{}').done).toBe(true)
    await new Promise((resolve) => setTimeout(resolve, 10))
    expect(stored[0]?.body ?? stored[0]?.chunks?.join('')).toBe(text)
  })

  it('replays a hit without going upstream', async () => {
    const before = fake.requests.length
    const { status, headers, text } = await post(`${server.url}/v1/chat/completions`, {
      model: 'ok',
      messages: [{ role: 'user', content: 'cached please' }],
    })
    expect(status).toBe(200)
    expect(text).toBe('{"from":"cache"}')
    expect(headers.get('x-velo-cache')).toBe('hit')
    expect(fake.requests.length).toBe(before)
    expect(acquired).toHaveLength(0)
  })

  it('stores nothing when the stream fails, and still releases the lease', async () => {
    await post(`${server.url}/v1/chat/completions`, {
      model: 'dies',
      stream: true,
      messages: [{ role: 'user', content: 'hi' }],
    })
    await new Promise((resolve) => setTimeout(resolve, 10))
    expect(stored).toHaveLength(0)
    expect(released).toBe(1)
  })

  it('clears the cache on POST /velo/cache/clear and reports the cache in /velo/status', async () => {
    const cleared = await post(`${server.url}/velo/cache/clear`, {})
    expect(JSON.parse(cleared.text)).toEqual({ cleared: 0 })
    const status = (await (await fetch(`${server.url}/velo/status`)).json()) as VeloStatus
    expect(status.cache).toMatchObject({ hits: 1, misses: 3, hitRate: 0.25 })
  })
})
