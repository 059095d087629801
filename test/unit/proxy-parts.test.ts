import { readFile } from 'node:fs/promises'
import { describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/core/config/load.js'
import { VeloError } from '../../src/core/errors.js'
import { errorBody, familyOf, upstreamErrorMessage } from '../../src/proxy/errors.js'
import { usageFromText } from '../../src/proxy/inference.js'
import { parameterSize } from '../../src/proxy/listing.js'
import { mergeLlamaArgs } from '../../src/proxy/managed.js'
import { mergeOllamaOptions } from '../../src/proxy/profiles.js'
import { applyServeFlags, modelFileSpecs } from '../../src/proxy/serve.js'
import { StatsTracker } from '../../src/proxy/stats.js'
import { ollamaHostUrl } from '../../src/proxy/upstreams.js'

async function fixture(path: string): Promise<{ raw?: string; response?: unknown }> {
  return JSON.parse(await readFile(new URL(`../fixtures/translate/${path}`, import.meta.url), 'utf8'))
}

describe('managed llama-server arguments', () => {
  it('puts a profile’s settings between velo’s and the model’s, dropping what the user set', () => {
    expect(
      mergeLlamaArgs(
        ['--jinja', '-t', '4'],
        ['--ctx-size', '8192', '--threads', '8', '-fa', 'on'],
        ['-c', '4096'],
      ),
    ).toEqual(['--jinja', '-t', '4', '-fa', 'on', '-c', '4096'])
  })

  it('keeps flags without values and negative numbers as values', () => {
    expect(mergeLlamaArgs([], ['--n-gpu-layers', '-1', '--no-mmap'], [])).toEqual([
      '--n-gpu-layers',
      '-1',
      '--no-mmap',
    ])
    expect(mergeLlamaArgs([], ['--parallel', '4'], ['--parallel=2'])).toEqual(['--parallel=2'])
  })
})

describe('profile options for Ollama requests', () => {
  it('fills what the request leaves out and keeps what it sets', () => {
    expect(mergeOllamaOptions({ num_ctx: 512, temperature: 0 }, { num_ctx: 4096, num_batch: 256 })).toEqual({
      num_ctx: 512,
      temperature: 0,
      num_batch: 256,
    })
    expect(mergeOllamaOptions(undefined, { num_ctx: 4096 })).toEqual({ num_ctx: 4096 })
    expect(mergeOllamaOptions({ num_ctx: 1 }, { num_ctx: 4096 })).toBeUndefined()
  })
})

describe('token counts read from passed-through bodies', () => {
  it('reads llama-server’s streamed timings (prompt = processed + cached)', async () => {
    const { raw } = await fixture('llama-server/chat-stream-no-usage.json')
    const usage = usageFromText(raw ?? '')
    expect(usage.completion).toBeGreaterThan(0)
    expect(usage.prompt).toBeGreaterThan(0)
  })

  it('prefers OpenAI usage, and reads Ollama counts', async () => {
    const chat = await fixture('llama-server/chat.json')
    const body = chat.response as { usage: { prompt_tokens: number; completion_tokens: number } }
    expect(usageFromText(JSON.stringify(body))).toEqual({
      prompt: body.usage.prompt_tokens,
      completion: body.usage.completion_tokens,
    })
    const ollama = await fixture('ollama/chat-stream.json')
    const last = JSON.parse(ollama.raw?.trim().split('\n').at(-1) ?? '{}') as {
      eval_count: number
      prompt_eval_count: number
    }
    expect(usageFromText(ollama.raw ?? '')).toEqual({
      prompt: last.prompt_eval_count,
      completion: last.eval_count,
    })
  })
})

describe('serve flags over the config file', () => {
  it('adds upstreams and model folders, replaces scalars', () => {
    const config = applyServeFlags(
      parseConfig({ upstreams: [{ url: 'http://a:1' }], managed: { modelsDirs: ['/m'] } }),
      {
        port: 9000,
        upstream: ['http://b:2/v1'],
        modelsDir: ['/n'],
        maxLoaded: 1,
        idleTtl: '30s',
        logFormat: 'json',
      },
    )
    expect(config.server.port).toBe(9000)
    expect(config.server.logFormat).toBe('json')
    expect(config.upstreams.map((upstream) => upstream.url)).toEqual(['http://a:1', 'http://b:2/v1'])
    expect(config.managed).toMatchObject({ modelsDirs: ['/m', '/n'], maxLoaded: 1, idleTtl: 30_000 })
  })

  it('names the flag and the expectation when a value is wrong', () => {
    expect(() => applyServeFlags(parseConfig({}), { upstream: ['localhost'] })).toThrow(
      /--upstream: expected a URL/,
    )
    expect(() => applyServeFlags(parseConfig({}), { idleTtl: 'soon' })).toThrow(
      /--idle-ttl: expected a duration/,
    )
    expect(() => modelFileSpecs(['/no/such.gguf'], parseConfig({}))).toThrow(
      /--model: \/no\/such.gguf does not exist/,
    )
  })

  it('reads OLLAMA_HOST the way Ollama does', () => {
    expect(ollamaHostUrl({})).toBe('http://127.0.0.1:11434')
    expect(ollamaHostUrl({ OLLAMA_HOST: '0.0.0.0' })).toBe('http://127.0.0.1:11434')
    expect(ollamaHostUrl({ OLLAMA_HOST: '0.0.0.0:9999' })).toBe('http://127.0.0.1:9999')
    expect(ollamaHostUrl({ OLLAMA_HOST: 'https://box.lan:443' })).toBe('https://box.lan')
    expect(ollamaHostUrl({ OLLAMA_HOST: 'box.lan' })).toBe('http://box.lan:11434')
  })
})

describe('error bodies by API family', () => {
  const error = new VeloError('VELO_BAD_REQUEST', 'messages[0].role: expected one of system|user, got "bot"')

  it('picks the family from the path', () => {
    expect(familyOf('/v1/chat/completions')).toBe('openai')
    expect(familyOf('/api/chat')).toBe('ollama')
    expect(familyOf('/velo/status')).toBe('velo')
  })

  it('writes OpenAI’s shape with the bad field as param, Ollama’s as one string', () => {
    expect(errorBody('openai', error)).toEqual({
      error: {
        message: error.message,
        type: 'invalid_request_error',
        param: 'messages[0].role',
        code: 'VELO_BAD_REQUEST',
      },
    })
    expect(errorBody('ollama', error)).toEqual({ error: error.message })
  })

  it('finds the message inside either family’s error body', () => {
    expect(upstreamErrorMessage('{"error":{"message":"boom"}}')).toBe('boom')
    expect(upstreamErrorMessage('{"error":"model not found"}')).toBe('model not found')
    expect(upstreamErrorMessage('Bad Gateway')).toBe('Bad Gateway')
  })
})

describe('status figures', () => {
  it('spreads generated tokens over the seconds they took and averages the last five', () => {
    const stats = new StatsTracker()
    const base = Date.UTC(2026, 0, 1, 0, 0, 0)
    const record = (model: string, completionTokens: number, status = 200) => ({
      id: 'x',
      at: '',
      model,
      client: 'c',
      route: '/v1/chat/completions',
      status,
      ttftMs: 100,
      promptTokens: 5,
      completionTokens,
      durationMs: 2100,
      cache: 'miss' as const,
      upstream: undefined,
      queueMs: 0,
    })
    // 100 tokens generated from second 0.1 to second 2.1: 3 seconds touched.
    stats.record(record('a', 90), base, base + 2100)
    stats.record(record('a', 0, 502), base + 2000, base + 2500)
    const now = base + 5000
    expect(stats.tokensPerSecondHistory(now).slice(-5)).toEqual([30, 30, 30, 0, 0])
    expect(stats.tokensPerSecond(now)).toBe(18)
    expect(stats.totals).toEqual({ requests: 2, errors: 1, promptTokens: 10, completionTokens: 90 })
    expect(stats.modelRates('a', now)).toMatchObject({ requestsPerSecond: 0.4, ttftP50Ms: 100 })
    expect(stats.recent()[0]?.status).toBe(502)
  })

  it('writes parameter counts the way Ollama does', () => {
    expect(parameterSize(19_500_000)).toBe('19.5M')
    expect(parameterSize(7_615_616_512)).toBe('7.6B')
  })
})
