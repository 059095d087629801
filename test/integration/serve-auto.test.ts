import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/core/config/load.js'
import type { VeloConfigInput } from '../../src/core/config/schema.js'
import { silentLogger } from '../../src/proxy/logging.js'
import { startServe } from '../../src/proxy/serve.js'
import type { VeloServer } from '../../src/proxy/server.js'
import { lacks, required, rig } from '../helpers/rig.js'

/**
 * The `auto` model alias (scheduler.auto rules) and the stages' counters on /metrics, with velo
 * serve built as `velo serve` builds it, in front of the rig's real llama-server.
 */

async function serve(config: VeloConfigInput): Promise<VeloServer> {
  return startServe({
    config: parseConfig({
      ...config,
      server: { port: 0, host: '127.0.0.1' },
      engine: { llamaServer: required(rig().llamaServer, 'llama-server') },
    }),
    version: 'test',
    logger: silentLogger(),
    autoOllama: false,
    defaultModel: false,
  })
}

interface Posted {
  status: number
  text: string
  headers: Record<string, string | string[] | undefined>
}

async function post(url: string, body: unknown): Promise<Posted> {
  const response = await request(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  return { status: response.statusCode, text: await response.body.text(), headers: response.headers }
}

/** The value of one unlabelled sample in a Prometheus text exposition. */
function sample(text: string, name: string): number | undefined {
  const line = text.split('\n').find((row) => row.startsWith(`${name} `))
  return line === undefined ? undefined : Number(line.slice(name.length + 1))
}

const LOOKUP_TOOL = {
  type: 'function',
  function: {
    name: 'lookup',
    description: 'Look a word up',
    parameters: { type: 'object', properties: { word: { type: 'string' } }, required: ['word'] },
  },
}

describe.skipIf(lacks('llama-server'))('velo serve: the auto alias and stage metrics', () => {
  let velo: VeloServer
  let chat: string

  beforeAll(async () => {
    const tiny = required(rig().tinyModel, 'tiny model')
    const args = ['--ctx-size', '2048', '--parallel', '1']
    velo = await serve({
      managed: {
        maxLoaded: 2,
        models: { 'velo-little': { path: tiny, args }, 'velo-large': { path: tiny, args } },
      },
      scheduler: {
        auto: { rules: [{ model: 'velo-little', maxPromptChars: 200, tools: false }], default: 'velo-large' },
      },
      // The synthetic model writes gibberish: tool-call repair would turn its answers into errors.
      toolCalls: { repair: false },
    })
    chat = `${velo.url}/v1/chat/completions`
  })
  afterAll(async () => {
    await velo?.close()
  })

  // temperature 1 without a seed: not cached, so the cache counters below count only the cache test.
  const ask = (content: string, extra: Record<string, unknown> = {}) => ({
    model: 'auto',
    messages: [{ role: 'user', content }],
    temperature: 1,
    max_tokens: 4,
    ...extra,
  })

  it('routes a short prompt without tools to the small-model rule', async () => {
    const answer = await post(chat, ask('Hi there'))
    expect(answer.status, answer.text).toBe(200)
    expect(answer.headers['x-velo-routed-model']).toBe('velo-little')
    expect(answer.headers['x-velo-upstream']).toBe('managed:velo-little')
    expect((JSON.parse(answer.text) as { model: string }).model).toBe('velo-little')
  })

  it('routes a long prompt, and one with tools, to the default model', async () => {
    const long = await post(chat, ask('tell me more '.repeat(30)))
    expect(long.status, long.text).toBe(200)
    expect(long.headers['x-velo-routed-model']).toBe('velo-large')
    expect((JSON.parse(long.text) as { model: string }).model).toBe('velo-large')

    const tools = await post(chat, ask('Hi there', { tools: [LOOKUP_TOOL] }))
    expect(tools.status, tools.text).toBe(200)
    expect(tools.headers['x-velo-routed-model']).toBe('velo-large')
    expect(tools.headers['x-velo-upstream']).toBe('managed:velo-large')
  })

  it('does not add the header to requests that name a model', async () => {
    const answer = await post(chat, { ...ask('Hi there'), model: 'velo-large' })
    expect(answer.status, answer.text).toBe(200)
    expect(answer.headers['x-velo-routed-model']).toBeUndefined()
  })

  it('counts a cache miss and a hit on /metrics', async () => {
    const deterministic = { ...ask('Cache me'), temperature: 0 }
    const first = await post(chat, deterministic)
    expect(first.headers['x-velo-cache']).toBe('miss')
    const second = await post(chat, deterministic)
    expect(second.headers['x-velo-cache']).toBe('hit')
    expect(second.headers['x-velo-routed-model']).toBe('velo-little')
    expect(second.text).toBe(first.text)

    const metrics = await (await request(`${velo.url}/metrics`)).body.text()
    expect(sample(metrics, 'velo_cache_hits_total')).toBe(1)
    expect(sample(metrics, 'velo_cache_misses_total')).toBe(1)
    expect(sample(metrics, 'velo_cache_stores_total')).toBe(1)
    expect(sample(metrics, 'velo_cache_bypasses_total')).toBe(4)
    expect(sample(metrics, 'velo_cache_entries')).toBe(1)
    expect(sample(metrics, 'velo_cache_bytes')).toBeGreaterThan(0)
    expect(sample(metrics, 'velo_model_switches_total')).toBe(0)
    expect(metrics).toContain('velo_tool_calls_total')
  })
})

describe('velo serve: auto without rules', () => {
  let velo: VeloServer

  beforeAll(async () => {
    velo = await startServe({
      config: parseConfig({ server: { port: 0, host: '127.0.0.1' } }),
      version: 'test',
      logger: silentLogger(),
      autoOllama: false,
      defaultModel: false,
    })
  })
  afterAll(async () => {
    await velo?.close()
  })

  it('answers 404 naming the scheduler.auto settings to configure', async () => {
    const answer = await post(`${velo.url}/v1/chat/completions`, {
      model: 'auto',
      messages: [{ role: 'user', content: 'Hi' }],
    })
    expect(answer.status).toBe(404)
    expect(answer.text).toContain('scheduler.auto')
  })
})
