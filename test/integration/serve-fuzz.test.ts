/**
 * Property-based fuzzing (fast-check) of every route velo serves, in front of the rig's real
 * llama-server: arbitrary and near-valid bodies, odd headers, methods and paths, and broken HTTP
 * framing on a raw socket. The properties: no 5xx that velo makes from bad input, velo keeps
 * answering, every error has its family's documented shape (docs/serve.md, "Errors") and a 400
 * names the field. llama-server runs with `--n-predict 8`, so a request that passes validation
 * costs a few tokens whatever it asks for.
 *
 * VELO_FUZZ_RUNS scales the runs per property (default 25); VELO_FUZZ_SEED replays a failure
 * (fast-check prints the seed and the shrunk counterexample).
 */
import { connect } from 'node:net'
import { Writable } from 'node:stream'
import fc from 'fast-check'
import { request } from 'undici'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/core/config/load.js'
import type { LlamaServer } from '../../src/core/engine/llama-server.js'
import { INFERENCE_ROUTES, type InferenceRoute } from '../../src/proxy/bridge.js'
import { familyOf } from '../../src/proxy/errors.js'
import { createLogger } from '../../src/proxy/logging.js'
import { startServe } from '../../src/proxy/serve.js'
import type { VeloServer } from '../../src/proxy/server.js'
import { lacks, startRigLlamaServer } from '../helpers/rig.js'
import {
  ALIAS,
  type Body,
  bodyFor,
  deep,
  MODEL,
  Raw,
  raw,
  serialize,
  TEMPLATES,
} from './serve-fuzz-arbitraries.js'

const RUNS = Number(process.env['VELO_FUZZ_RUNS'] ?? 25)
const SEED = process.env['VELO_FUZZ_SEED'] === undefined ? undefined : Number(process.env['VELO_FUZZ_SEED'])
const KNOWN_NAMES = new Set([MODEL, ALIAS, `${MODEL}:latest`])

/**
 * 500s llama-server itself answers to input velo passes on as it came (velo relays an upstream's
 * answer; validating every engine's capabilities is not its job). Each is a known llama-server
 * gap, listed so that any other 5xx fails the run.
 */
const UPSTREAM_REFUSALS = [
  // An image or audio part for a model without a projector for it.
  /(image|audio) input is not supported/,
  // An embedding input longer than llama-server's batch (Ollama would truncate it).
  /is too large to process\. increase the physical batch size/,
  // Tool call arguments in the history that are not JSON ("" or "{city"); OpenAI takes any string.
  /Failed to parse tool call arguments as JSON/,
]

function assertOptions<T>(examples: T[] = []): fc.Parameters<T> {
  return { numRuns: RUNS, seed: SEED, examples, endOnFailure: true }
}

// ---------------------------------------------------------------------------------------------
// Headers

const printable = fc.string({
  unit: fc.integer({ min: 0x20, max: 0x7e }).map((code) => String.fromCharCode(code)),
  maxLength: 48,
})

const headersArb: fc.Arbitrary<Record<string, string>> = fc.record(
  {
    'content-type': fc.oneof(
      fc.constantFrom(
        'application/json',
        'application/json; charset=latin1',
        'text/plain',
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x',
        'application/x-ndjson',
        '',
      ),
      printable,
    ),
    authorization: fc.oneof(
      fc.constantFrom('Bearer', 'Bearer ', 'bearer sk-test', 'Basic Zm9vOmJhcg==', ''),
      printable.map((token) => `Bearer ${token}`),
      printable,
    ),
    'x-request-id': fc.oneof(fc.stringMatching(/^[\w.:-]{1,40}$/), printable, fc.constant('a'.repeat(200))),
    'x-velo-priority': fc.oneof(
      fc.integer().map(String),
      fc.constantFrom('NaN', '1e9', '-0', '99999999999'),
      printable,
    ),
    accept: fc.oneof(fc.constantFrom('*/*', 'text/event-stream', 'application/x-ndjson', ''), printable),
    'cache-control': fc.oneof(
      fc.constantFrom('no-store', 'no-cache', 'max-age=0', 'only-if-cached'),
      printable,
    ),
    'content-encoding': fc.constantFrom('gzip', 'br', 'identity'),
    origin: fc.oneof(fc.constant('https://evil.example'), printable),
  },
  { requiredKeys: [] },
)

// ---------------------------------------------------------------------------------------------
// Checking a reply

interface Reply {
  status: number
  headers: Record<string, string | string[] | undefined>
  text: string
}

function header(reply: Reply, name: string): string | undefined {
  const value = reply.headers[name]
  return Array.isArray(value) ? value[0] : value
}

function upstreamRefusal(text: string): boolean {
  return UPSTREAM_REFUSALS.some((pattern) => pattern.test(text))
}

/** The error message a body carries in any of the three families, for assertions' labels. */
function messageOf(body: unknown): string {
  const error = (body as { error?: unknown } | null)?.error
  if (typeof error === 'string') return error
  const message = (error as { message?: unknown } | undefined)?.message
  return typeof message === 'string' ? message : ''
}

/**
 * The properties every reply must have: below 500 (but for the listed upstream gaps), and an
 * error in its family's documented shape that names the field when it is a 400.
 */
function expectWellFormed(method: string, path: string, reply: Reply, sent?: Body): void {
  const where = `${method} ${path}${sent ? ` with ${sent}` : ''} answered ${reply.status}: ${reply.text.slice(0, 400)}`
  if (reply.status >= 500) expect(upstreamRefusal(reply.text), where).toBe(true)
  if (reply.status < 400 || method === 'HEAD') return
  let body: unknown
  expect(() => {
    body = JSON.parse(reply.text)
  }, where).not.toThrow()
  const family = familyOf(path.split('?')[0] ?? path)
  const message = messageOf(body)
  expect(message.length, where).toBeGreaterThan(0)
  expect(message, where).not.toMatch(/\n\s+at /)
  if (family === 'ollama') {
    expect(body, where).toEqual({ error: expect.any(String) })
    // A 400 is velo's validation (`field: expected ...`) or an upstream's refusal, which velo names.
    if (reply.status === 400 && !message.startsWith('upstream ')) expect(message, where).toMatch(/^[^\s:]+: /)
    return
  }
  if (family === 'openai') {
    const error = (body as { error: Record<string, unknown> }).error
    if (typeof error['code'] === 'string' && error['code'].startsWith('VELO_')) {
      expect(body, where).toEqual({
        error: {
          message: expect.any(String),
          type: expect.any(String),
          param: expect.toBeOneOf([expect.any(String), null]),
          code: expect.any(String),
        },
      })
      if (error['code'] === 'VELO_BAD_REQUEST' && reply.status === 400) {
        expect(error['param'], where).toEqual(expect.any(String))
        expect(message.startsWith(`${String(error['param'])}: `), where).toBe(true)
      }
      // An unknown model lists the names there are; `auto` without rules names scheduler.auto instead.
      if (error['code'] === 'VELO_MODEL_NOT_FOUND') {
        expect(message, where).toContain(message.includes('auto-routing alias') ? 'scheduler.auto' : MODEL)
      }
    } else {
      // The upstream's own OpenAI error, relayed as it came (same API family).
      expect(error, where).toMatchObject({ message: expect.any(String) })
      expect(header(reply, 'x-velo-upstream'), where).toBeTruthy()
    }
    return
  }
  expect(body, where).toEqual({
    error: {
      code: expect.any(String),
      message: expect.any(String),
      suggestion: expect.toBeOneOf([expect.any(String), null]),
    },
  })
}

describe.skipIf(lacks('llama-server'))('velo serve under fuzzed input (fast-check)', () => {
  let engine: LlamaServer
  let velo: VeloServer
  const unexpected: string[] = []

  /** One request; a status stream (`/velo/status` as SSE) is cut after its headers. */
  async function call(
    method: string,
    path: string,
    options: { body?: Body | undefined; headers?: Record<string, string> } = {},
  ): Promise<Reply> {
    const response = await request(`${velo.url}${path}`, {
      method: method as 'GET',
      headers: options.headers,
      body: method === 'GET' || method === 'HEAD' ? undefined : options.body?.bytes,
      headersTimeout: 60_000,
      bodyTimeout: 60_000,
    })
    const type = String(response.headers['content-type'] ?? '')
    if (path.startsWith('/velo/status') && type.startsWith('text/event-stream')) {
      response.body.destroy()
      return { status: response.statusCode, headers: response.headers, text: '' }
    }
    return { status: response.statusCode, headers: response.headers, text: await response.body.text() }
  }

  beforeAll(async () => {
    // One thread: on loaded cores llama.cpp's threads otherwise stall each other for seconds.
    engine = await startRigLlamaServer({
      args: [
        '--embeddings',
        '--pooling',
        'mean',
        '--n-predict',
        '8',
        '--threads',
        '1',
        '--threads-batch',
        '1',
      ],
    })
    // Errors velo did not expect (anything but a VeloError) are logged as "unexpected error".
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString('utf8').split('\n')) {
          if (line.includes('unexpected error')) unexpected.push(line)
        }
        done()
      },
    })
    velo = await startServe({
      config: parseConfig({
        server: { port: 0 },
        upstreams: [{ url: engine.url, kind: 'openai', name: 'llama' }],
        aliases: { [ALIAS]: MODEL },
      }),
      version: 'fuzz',
      logger: createLogger({ format: 'json', destination: sink, level: 'warn' }),
      autoOllama: false,
      defaultModel: false,
    })
  })

  afterEach(async () => {
    // No crash, nothing broken: velo still answers its probe, and nothing unexpected was thrown.
    const health = await call('GET', '/health')
    expect(health.status).toBe(200)
    expect(unexpected.splice(0)).toEqual([])
  })

  afterAll(async () => {
    await velo?.close()
    await engine?.stop()
  })

  const bodyRoutes = [...(Object.keys(INFERENCE_ROUTES) as InferenceRoute[]), '/api/show' as const]

  for (const route of bodyRoutes) {
    it(`${route}: arbitrary and near-valid bodies with odd headers never make a 5xx`, async () => {
      // Known hard cases always run first, before the random ones.
      const template = TEMPLATES[route]
      const examples: [Body, Record<string, string>][] = [
        [serialize(template), {}],
        [serialize({ ...template, extra: deep(100_000) }), {}],
        [serialize({ ...template, model: ALIAS, extra: deep(5_000) }), {}],
        [serialize({ ...template, temperature: raw('1e400') }), {}],
        [serialize({ ...template, model: raw('"velo-\\ud800"') }), {}],
        [serialize({ model: MODEL, x: new Raw(Buffer.from([0x22, 0xff, 0xfe, 0x22])) }), {}],
        [serialize({ ...template, input: [], prompt: [] }), {}],
        // Optional fields may be null (docs/serve.md), also where llama-server wants a string.
        [serialize({ ...template, encoding_format: null, user: null }), {}],
        [
          serialize({
            ...template,
            messages: [{ role: 'user', content: 'Hi', name: null, tool_call_id: null }],
          }),
          {},
        ],
      ]
      // The template itself is served: the properties below are about more than refusals.
      const valid = await call('POST', route, { body: serialize(template) })
      expect(valid.status, valid.text.slice(0, 300)).toBe(200)
      await fc.assert(
        fc.asyncProperty(bodyFor(route), headersArb, async (body, headers) => {
          const reply = await call('POST', route, { body, headers })
          expectWellFormed('POST', route, reply, body)
          const id = headers['x-request-id']
          const echoed = header(reply, 'x-request-id')
          expect(echoed).toBeTruthy()
          if (id !== undefined && /^[\w.:-]{1,128}$/.test(id)) expect(echoed).toBe(id)
          else if (id !== undefined) expect(echoed).not.toBe(id)
        }),
        assertOptions(examples),
      )
    })
  }

  it('every route under odd methods, paths and queries never makes a 5xx', async () => {
    const segment = fc.oneof(
      fc.constantFrom(
        '%ZZ',
        '%E0%A4%A',
        '%',
        '%00',
        '%2F..%2F',
        '..',
        `${MODEL}%3Alatest`,
        '%F0%9F%99%82',
        'a'.repeat(300),
      ),
      fc.stringMatching(/^[A-Za-z0-9._~%:@!$&'()*+,;=-]{1,24}$/),
    )
    const safeSegment = segment.filter((text) => {
      // Pausing or unloading a real model would change what the other runs measure.
      try {
        return !KNOWN_NAMES.has(decodeURIComponent(text))
      } catch {
        return true
      }
    })
    const path = fc.oneof(
      fc.constantFrom(
        '/',
        '/health',
        '/ready',
        '/metrics',
        '/velo/status',
        '/velo/cache/clear',
        '/v1/models',
        `/v1/models/${MODEL}`,
        '/v1/audio/transcriptions',
        '/v1/audio/translations',
        '/api/tags',
        '/api/ps',
        '/api/show',
        '/api/version',
        '/v1/responses',
        '/v1',
        '/api',
        '/velo',
        '//health',
        '/health/',
        '/HEALTH',
        ...Object.keys(INFERENCE_ROUTES),
      ),
      segment.map((id) => `/v1/models/${id}`),
      fc
        .tuple(safeSegment, fc.constantFrom('load', 'unload', 'pause', 'resume', 'reload'))
        .map(([id, verb]) => `/velo/models/${id}/${verb}`),
      segment.map((text) => `/${text}`),
    )
    const query = fc.option(
      fc.constantFrom('?', '?a=1', '?%ZZ', '?stream=true&model=x', `?${'q'.repeat(2000)}`),
      {
        nil: '',
      },
    )
    const method = fc.constantFrom(
      'GET',
      'POST',
      'PUT',
      'DELETE',
      'PATCH',
      'HEAD',
      'OPTIONS',
      'TRACE',
      'PROPFIND',
    )
    await fc.assert(
      fc.asyncProperty(
        method,
        path,
        query,
        fc.option(bodyFor('/v1/chat/completions')),
        async (verb, where, q, body) => {
          const reply = await call(verb, `${where}${q}`, { body: body ?? undefined })
          expectWellFormed(verb, where, reply, body ?? undefined)
        },
      ),
      {
        ...assertOptions<[string, string, string, Body | null]>([
          ['GET', '/v1/models/%ZZ', '', null],
          ['POST', '/velo/models/%E0%A4%A/unload', '', null],
          ['GET', `/v1/models/${MODEL}%3Alatest`, '', null],
          ['DELETE', '/v1/chat/completions', '', null],
        ]),
        numRuns: RUNS * 4,
      },
    )
  })

  it('broken HTTP framing on a raw socket never makes a 5xx or takes velo down', async () => {
    const framing = fc.constantFrom(
      'exact',
      'short',
      'long',
      'not-a-number',
      'negative',
      'both',
      'chunked',
      'bad-chunk',
      'huge',
      'duplicate',
    )
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...bodyRoutes),
        framing,
        fc.constantFrom(...Object.values(TEMPLATES)).map(serialize),
        async (route, kind, body) => {
          const status = await rawRequest(route, kind, body.bytes)
          if (status !== undefined) expect(status, `${kind} framing on ${route}`).toBeLessThan(500)
          if (kind === 'huge') expect(status).toBe(413)
        },
      ),
      { ...assertOptions(), numRuns: RUNS * 2 },
    )
  })

  /** Write one request by hand; resolves with the first status line's code (undefined: no answer). */
  function rawRequest(route: string, kind: string, body: Buffer): Promise<number | undefined> {
    const { hostname, port } = new URL(velo.url)
    const head = (lines: string[]): Buffer =>
      Buffer.from(
        [
          `POST ${route} HTTP/1.1`,
          `Host: ${hostname}`,
          'Content-Type: application/json',
          ...lines,
          '',
          '',
        ].join('\r\n'),
      )
    let message: Buffer
    let close = false
    switch (kind) {
      case 'short':
        message = Buffer.concat([head([`Content-Length: ${Math.max(0, body.length - 7)}`]), body])
        break
      case 'long':
        // The body stops before its declared length and the client hangs up.
        message = Buffer.concat([head([`Content-Length: ${body.length + 50}`]), body])
        close = true
        break
      case 'not-a-number':
        message = Buffer.concat([head(['Content-Length: abc']), body])
        break
      case 'negative':
        message = Buffer.concat([head(['Content-Length: -5']), body])
        break
      case 'both':
        message = Buffer.concat([
          head([`Content-Length: ${body.length}`, 'Transfer-Encoding: chunked']),
          Buffer.from(`${body.length.toString(16)}\r\n`),
          body,
          Buffer.from('\r\n0\r\n\r\n'),
        ])
        break
      case 'chunked':
        message = Buffer.concat([
          head(['Transfer-Encoding: chunked']),
          Buffer.from(`${body.length.toString(16)}\r\n`),
          body,
          Buffer.from('\r\n0\r\n\r\n'),
        ])
        break
      case 'bad-chunk':
        message = Buffer.concat([
          head(['Transfer-Encoding: chunked']),
          Buffer.from('zz\r\n'),
          body,
          Buffer.from('\r\n0\r\n\r\n'),
        ])
        break
      case 'huge':
        message = head(['Content-Length: 1000000000000'])
        break
      case 'duplicate':
        message = Buffer.concat([
          head([`Content-Length: ${body.length}`, `Content-Length: ${body.length + 1}`]),
          body,
        ])
        break
      default:
        message = Buffer.concat([head([`Content-Length: ${body.length}`, 'Connection: close']), body])
    }
    return new Promise((resolve, reject) => {
      const socket = connect(Number(port), hostname)
      let received = ''
      const timer = setTimeout(() => {
        socket.destroy()
        reject(new Error(`no answer and no close within 60 s (${kind} framing on ${route})`))
      }, 60_000)
      const settle = (): void => {
        clearTimeout(timer)
        const match = /^HTTP\/1\.[01] (\d{3})/.exec(received)
        resolve(match ? Number(match[1]) : undefined)
      }
      socket.on('data', (chunk: Buffer) => {
        received += chunk.toString('latin1')
        // The first status line is all this needs; velo may keep the connection open after it.
        if (/^HTTP\/1\.[01] \d{3}/.test(received)) {
          socket.destroy()
          settle()
        }
      })
      socket.on('error', () => settle())
      socket.on('close', () => settle())
      socket.write(message, () => {
        if (close) socket.end()
      })
    })
  }

  it('llama-server is still up after the fuzzing', async () => {
    const response = await request(`${engine.url}/health`)
    await response.body.dump()
    expect(response.statusCode).toBe(200)
  })
})
