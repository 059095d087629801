import { Ollama } from 'ollama'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { VeloServer } from '../../src/proxy/server.js'
import type { VeloStatus } from '../../src/proxy/status-types.js'
import { lacks, type RigOllama, required, rig, startRigOllama } from '../helpers/rig.js'
import { getJson, postJson, startVelo } from './serve-helpers.js'

const WEATHER_TOOL = {
  type: 'function' as const,
  function: {
    name: 'get_weather',
    description: 'Current weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
}

describe.skipIf(lacks('ollama'))('velo serve in front of Ollama', () => {
  let upstream: RigOllama
  let velo: VeloServer
  let openai: OpenAI
  let ollama: Ollama

  beforeAll(async () => {
    upstream = await startRigOllama()
    await upstream.create('velo-tiny', required(rig().tinyModel, 'tiny model'))
    // The kind is not given: velo probes it (Ollama answers /api/version).
    velo = await startVelo({ upstreams: [{ url: upstream.url }], aliases: { 'gpt-4o-mini': 'velo-tiny' } })
    openai = new OpenAI({ baseURL: `${velo.url}/v1`, apiKey: 'unused', maxRetries: 0 })
    ollama = new Ollama({ host: velo.url })
  })
  afterAll(async () => {
    await velo?.close()
    await upstream?.stop()
  })

  it('probes the upstream kind and lists its models with aliases', async () => {
    const { body } = await getJson<VeloStatus>(`${velo.url}/velo/status`)
    expect(body.upstreams[0]).toMatchObject({ url: upstream.url, kind: 'ollama', healthy: true })
    const ids = (await openai.models.list()).data.map((model) => model.id)
    expect(ids).toEqual(expect.arrayContaining(['velo-tiny:latest', 'gpt-4o-mini']))
  })

  it('answers /api/version with the upstream Ollama’s version, not velo’s', async () => {
    const direct = await getJson<{ version: string }>(`${upstream.url}/api/version`)
    expect(direct.body.version).toMatch(/^\d+\.\d+\.\d+/)
    const { status, body } = await getJson<{ version: string }>(`${velo.url}/api/version`)
    expect(status).toBe(200)
    expect(body).toEqual({ version: direct.body.version })
    expect(body.version).not.toBe('test')
    expect(await ollama.version()).toEqual({ version: direct.body.version })
  })

  it('reports the upstream as up in /metrics', async () => {
    const text = await (await fetch(`${velo.url}/metrics`)).text()
    expect(text).toContain(`velo_upstream_up{upstream="${upstream.url}"} 1\n`)
  })

  describe('the official ollama client (same API: bytes passed through)', () => {
    it('chats, plain and streamed', async () => {
      const response = await ollama.chat({
        model: 'velo-tiny',
        messages: [{ role: 'user', content: 'Say hello' }],
        options: { num_predict: 8, temperature: 0 },
      })
      expect(response.message.content.length).toBeGreaterThan(0)
      expect(response.eval_count).toBeLessThanOrEqual(8)
      const stream = await ollama.chat({
        model: 'velo-tiny',
        messages: [{ role: 'user', content: 'Count' }],
        options: { num_predict: 8 },
        stream: true,
      })
      let text = ''
      let done = false
      for await (const part of stream) {
        text += part.message.content
        done = part.done
      }
      expect(text.length).toBeGreaterThan(0)
      expect(done).toBe(true)
    })

    it('generates, plain and streamed', async () => {
      const plain = await ollama.generate({
        model: 'velo-tiny',
        prompt: 'Once upon',
        options: { num_predict: 6 },
      })
      expect(plain.response?.length).toBeGreaterThan(0)
      expect(plain.eval_count).toBeLessThanOrEqual(6)
      const stream = await ollama.generate({
        model: 'velo-tiny',
        prompt: 'Once upon',
        options: { num_predict: 6 },
        stream: true,
      })
      let last: { done: boolean; eval_count: number } | undefined
      for await (const part of stream) last = part
      expect(last?.done).toBe(true)
      expect(last?.eval_count).toBeGreaterThan(0)
    })

    it('embeds', async () => {
      const result = await ollama.embed({ model: 'velo-tiny', input: ['hello', 'world'] })
      expect(result.embeddings).toHaveLength(2)
      expect(result.embeddings[0]?.length).toBeGreaterThan(0)
    })

    it('lists tags, loaded models and shows a model', async () => {
      const { models } = await ollama.list()
      expect(models.find((model) => model.name === 'velo-tiny:latest')?.details.family).toBe('llama')
      expect(models.map((model) => model.name)).toContain('gpt-4o-mini')
      const ps = await ollama.ps()
      expect(ps.models.map((model) => model.name)).toContain('velo-tiny:latest')
      const shown = await ollama.show({ model: 'velo-tiny' })
      expect(shown.details.family).toBe('llama')
      expect(shown.template).toContain('<|im_start|>')
    })
  })

  describe('the official openai client (translated to Ollama)', () => {
    it('chats, plain and streamed, with usage', async () => {
      const { data, response } = await openai.chat.completions
        .create({ model: 'velo-tiny', messages: [{ role: 'user', content: 'Say hello' }], max_tokens: 8 })
        .withResponse()
      expect(data.object).toBe('chat.completion')
      expect(data.model).toBe('velo-tiny')
      expect(data.choices[0]?.message.content?.length).toBeGreaterThan(0)
      expect(data.usage?.completion_tokens).toBeLessThanOrEqual(8)
      expect(response.headers.get('x-velo-upstream')).toBe(upstream.url)
      const stream = await openai.chat.completions.create({
        model: 'gpt-4o-mini',
        messages: [{ role: 'user', content: 'Count' }],
        max_tokens: 8,
        stream: true,
        stream_options: { include_usage: true },
      })
      let text = ''
      let usage: OpenAI.CompletionUsage | undefined
      let finish: string | null | undefined
      for await (const chunk of stream) {
        text += chunk.choices[0]?.delta.content ?? ''
        finish = chunk.choices[0]?.finish_reason ?? finish
        if (chunk.usage) usage = chunk.usage
      }
      expect(text.length).toBeGreaterThan(0)
      expect(finish).toBe('length')
      expect(usage?.completion_tokens).toBe(8)
    })

    it('completes text', async () => {
      const completion = await openai.completions.create({
        model: 'velo-tiny',
        prompt: 'Once upon',
        max_tokens: 6,
      })
      expect(completion.choices[0]?.text.length).toBeGreaterThan(0)
      expect(completion.usage?.completion_tokens).toBeLessThanOrEqual(6)
    })

    it('embeds (base64 as the client asks)', async () => {
      const result = await openai.embeddings.create({
        model: 'velo-tiny',
        input: ['hello world', 'good night'],
      })
      expect(result.data).toHaveLength(2)
      expect(result.data[0]?.embedding.length).toBeGreaterThan(0)
      expect(result.usage.prompt_tokens).toBeGreaterThan(0)
    })

    it('carries tool definitions and a finished tool round to Ollama', async () => {
      const question: OpenAI.ChatCompletionMessageParam = { role: 'user', content: 'Weather in Paris?' }
      const plain = await openai.chat.completions.create({
        model: 'velo-tiny',
        messages: [question],
        max_tokens: 4,
      })
      const withTools = await openai.chat.completions.create({
        model: 'velo-tiny',
        messages: [question],
        tools: [WEATHER_TOOL],
        max_tokens: 4,
      })
      expect(withTools.usage?.prompt_tokens).toBeGreaterThan((plain.usage?.prompt_tokens ?? 0) + 20)
      const answer = await openai.chat.completions.create({
        model: 'velo-tiny',
        tools: [WEATHER_TOOL],
        max_tokens: 6,
        messages: [
          question,
          {
            role: 'assistant',
            content: null,
            tool_calls: [
              {
                id: 'call_1',
                type: 'function',
                function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
              },
            ],
          },
          { role: 'tool', tool_call_id: 'call_1', content: '{"temp":21}' },
        ],
      })
      expect(answer.choices[0]?.message.role).toBe('assistant')
      expect(answer.usage?.prompt_tokens).toBeGreaterThan(withTools.usage?.prompt_tokens ?? 0)
    })

    it('names a bad field with an OpenAI error body', async () => {
      const { status, body } = await postJson<{ error: { message: string } }>(`${velo.url}/v1/embeddings`, {
        model: 'velo-tiny',
        input: { text: 'x' },
      })
      expect(status).toBe(400)
      expect(body.error.message).toMatch(/^input:/)
    })
  })

  it('finds Ollama at OLLAMA_HOST with nothing configured, and serves no default model then', async () => {
    const zeroConfig = await startVelo(
      {},
      {
        autoOllama: true,
        env: { ...process.env, OLLAMA_HOST: upstream.url },
        defaultModel: async () => required(rig().tinyModel, 'tiny model'),
      },
    )
    try {
      const { body } = await getJson<{ data: { id: string }[] }>(`${zeroConfig.url}/v1/models`)
      expect(body.data.map((model) => model.id)).toEqual(['velo-tiny:latest'])
      expect(zeroConfig.upstreams[0]).toMatchObject({ kind: 'ollama', healthy: true })
    } finally {
      await zeroConfig.close()
    }
  })

  it('answers 502 naming the upstream once Ollama is gone', async () => {
    await upstream.stop()
    const error = await openai.chat.completions
      .create({ model: 'velo-tiny', messages: [{ role: 'user', content: 'x' }], max_tokens: 2 })
      .catch((e: unknown) => e)
    expect((error as { status?: number }).status).toBe(502)
    expect(String((error as Error).message)).toContain(upstream.url)
    const { body } = await getJson<VeloStatus>(`${velo.url}/velo/status`)
    expect(body.upstreams[0]?.healthy).toBe(false)
    const ready = await getJson(`${velo.url}/ready`)
    expect(ready.status).toBe(503)
    const metrics = await (await fetch(`${velo.url}/metrics`)).text()
    expect(metrics).toContain(`velo_upstream_up{upstream="${upstream.url}"} 0\n`)
  })
})
