import { Ollama } from 'ollama'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { VeloServer } from '../../src/proxy/server.js'
import { lacks, required, rig } from '../helpers/rig.js'
import { alive, getJson, managedPid, modelStatus, postJson, startVelo, waitFor } from './serve-helpers.js'

const WEATHER_TOOL = {
  type: 'function' as const,
  function: {
    name: 'get_weather',
    description: 'Current weather in a city',
    parameters: {
      type: 'object',
      properties: { city: { type: 'string' } },
      required: ['city'],
    },
  },
}

describe.skipIf(lacks('llama-server'))('velo serve in front of a managed llama-server', () => {
  let velo: VeloServer
  let openai: OpenAI
  let ollama: Ollama

  beforeAll(async () => {
    velo = await startVelo({
      managed: {
        models: {
          'velo-tiny': {
            path: required(rig().tinyModel, 'tiny model'),
            // --embeddings: this llama-server serves chat and embeddings from one process with it.
            args: ['--ctx-size', '2048', '--parallel', '2', '--embeddings', '--pooling', 'mean'],
            aliases: ['tiny'],
          },
        },
      },
    })
    openai = new OpenAI({ baseURL: `${velo.url}/v1`, apiKey: 'unused', maxRetries: 0 })
    ollama = new Ollama({ host: velo.url })
  })
  afterAll(async () => {
    await velo?.close()
  })

  const metricsText = async (): Promise<string> => (await fetch(`${velo.url}/metrics`)).text()

  describe('the official openai client (same API: bytes passed through)', () => {
    it('lists the managed model and its alias', async () => {
      const ids = (await openai.models.list()).data.map((model) => model.id)
      expect(ids).toEqual(expect.arrayContaining(['velo-tiny', 'tiny']))
    })

    it('chats, starting the llama-server on the first request, with velo headers', async () => {
      const { data, response } = await openai.chat.completions
        .create({ model: 'velo-tiny', messages: [{ role: 'user', content: 'Say hello' }], max_tokens: 8 })
        .withResponse()
      expect(data.choices[0]?.message.content?.length).toBeGreaterThan(0)
      expect(data.usage?.completion_tokens).toBeGreaterThan(0)
      expect(data.usage?.completion_tokens).toBeLessThanOrEqual(8)
      expect(response.headers.get('x-velo-upstream')).toBe('managed:velo-tiny')
      expect(response.headers.get('x-velo-cache')).toBe('bypass')
      expect(Number(response.headers.get('x-velo-queue-ms'))).toBeGreaterThanOrEqual(0)
      expect(response.headers.get('x-request-id')).toMatch(/\S+/)
    })

    it('answers under an alias', async () => {
      const completion = await openai.chat.completions.create({
        model: 'tiny',
        messages: [{ role: 'user', content: 'Hi' }],
        max_tokens: 4,
      })
      expect(completion.choices).toHaveLength(1)
    })

    it('streams a chat with usage at the end', async () => {
      const stream = await openai.chat.completions.create({
        model: 'velo-tiny',
        messages: [{ role: 'user', content: 'Count' }],
        max_tokens: 10,
        stream: true,
        stream_options: { include_usage: true },
      })
      let text = ''
      let usage: OpenAI.CompletionUsage | undefined
      let chunks = 0
      for await (const chunk of stream) {
        chunks++
        text += chunk.choices[0]?.delta.content ?? ''
        if (chunk.usage) usage = chunk.usage
      }
      expect(chunks).toBeGreaterThan(2)
      expect(text.length).toBeGreaterThan(0)
      expect(usage?.completion_tokens).toBeLessThanOrEqual(10)
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

    it('embeds (the client asks for base64 and decodes it)', async () => {
      const result = await openai.embeddings.create({
        model: 'velo-tiny',
        input: ['hello world', 'good night'],
      })
      expect(result.data).toHaveLength(2)
      expect(result.data[0]?.embedding).toHaveLength(256)
      expect(result.data[0]?.embedding.every(Number.isFinite)).toBe(true)
    })

    it('carries tool definitions and a finished tool round to the model', async () => {
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
      // The template renders the tool signatures into the prompt: they reached llama-server.
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

    it('says which models exist when asked for an unknown one (404, OpenAI error body)', async () => {
      const error = await openai.chat.completions
        .create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] })
        .catch((e: unknown) => e)
      expect(error).toBeInstanceOf(OpenAI.NotFoundError)
      expect((error as InstanceType<typeof OpenAI.NotFoundError>).message).toMatch(/no-such-model.*velo-tiny/)
    })

    it('names the bad field of an invalid body (400)', async () => {
      const { status, body } = await postJson<{ error: { message: string; type: string } }>(
        `${velo.url}/v1/chat/completions`,
        { model: 'velo-tiny', messages: [{ role: 'robot', content: 'x' }] },
      )
      expect(status).toBe(400)
      expect(body.error.type).toBe('invalid_request_error')
      expect(body.error.message).toMatch(/messages\[0\]\.role/)
    })
  })

  describe('the official ollama client (translated to llama-server)', () => {
    it('chats', async () => {
      const response = await ollama.chat({
        model: 'velo-tiny',
        messages: [{ role: 'user', content: 'Say hello' }],
        options: { num_predict: 8 },
      })
      expect(response.message.role).toBe('assistant')
      expect(response.message.content.length).toBeGreaterThan(0)
      expect(response.done).toBe(true)
      expect(response.eval_count).toBeGreaterThan(0)
      expect(response.eval_count).toBeLessThanOrEqual(8)
      expect(response.prompt_eval_count).toBeGreaterThan(0)
    })

    it('streams a chat as NDJSON with counts on the last line', async () => {
      const stream = await ollama.chat({
        model: 'velo-tiny',
        messages: [{ role: 'user', content: 'Count' }],
        options: { num_predict: 10 },
        stream: true,
      })
      let text = ''
      let last: { done: boolean; eval_count: number } | undefined
      for await (const part of stream) {
        text += part.message.content
        last = part
      }
      expect(text.length).toBeGreaterThan(0)
      expect(last?.done).toBe(true)
      expect(last?.eval_count).toBeLessThanOrEqual(10)
    })

    it('generates, plain and streamed', async () => {
      const plain = await ollama.generate({
        model: 'velo-tiny',
        prompt: 'Once upon',
        options: { num_predict: 6 },
      })
      expect(plain.response?.length).toBeGreaterThan(0)
      expect(plain.done).toBe(true)
      expect(plain.eval_count).toBeLessThanOrEqual(6)
      const stream = await ollama.generate({
        model: 'velo-tiny',
        prompt: 'Once upon',
        options: { num_predict: 6 },
        stream: true,
      })
      const parts: string[] = []
      let done = false
      for await (const part of stream) {
        parts.push(part.response ?? '')
        done = part.done
      }
      expect(parts.join('').length).toBeGreaterThan(0)
      expect(done).toBe(true)
    })

    it('embeds', async () => {
      const result = await ollama.embed({ model: 'velo-tiny', input: ['hello', 'world'] })
      expect(result.embeddings).toHaveLength(2)
      expect(result.embeddings[0]).toHaveLength(256)
    })

    it('lists tags with GGUF details, loaded models, and shows a model', async () => {
      const { models } = await ollama.list()
      const tiny = models.find((model) => model.name === 'velo-tiny')
      expect(tiny?.details.family).toBe('llama')
      expect(tiny?.details.quantization_level).toBe('F16')
      expect(tiny?.size).toBeGreaterThan(1_000_000)
      const ps = await ollama.ps()
      expect(ps.models.map((model) => model.name)).toContain('velo-tiny')
      const shown = await ollama.show({ model: 'velo-tiny' })
      expect(shown.details.family).toBe('llama')
      expect(shown.model_info['general.architecture' as keyof typeof shown.model_info]).toBe('llama')
    })

    it('answers an unknown model with an Ollama error body naming the available ones', async () => {
      const error = await ollama.chat({ model: 'nope', messages: [] }).catch((e: unknown) => e)
      expect((error as { status_code?: number }).status_code).toBe(404)
      expect(String((error as Error).message)).toMatch(/nope.*velo-tiny/)
    })
  })

  describe('operations', () => {
    it('exports request, token and model metrics', async () => {
      const response = await fetch(`${velo.url}/metrics`)
      const text = await response.text()
      expect(text).toMatch(
        /velo_requests_total\{model="velo-tiny",route="\/v1\/chat\/completions",status="200"\} \d+/,
      )
      expect(text).toMatch(/velo_tokens_total\{model="velo-tiny",kind="completion"\} \d+/)
      expect(text).toMatch(/velo_time_to_first_token_seconds_count\{model="velo-tiny"\} \d+/)
      expect(text).toMatch(
        /velo_request_duration_seconds_count\{model="velo-tiny",route="\/v1\/chat\/completions"\} [1-9]\d*/,
      )
      expect(text).toMatch(/velo_model_loaded\{model="velo-tiny"\} 1/)
      // Nothing in flight or waiting between requests: the gauges have no series for the model.
      expect(text).toContain('# TYPE velo_active_requests gauge')
      expect(text).not.toMatch(/velo_active_requests\{model="velo-tiny"\}/)
      expect(text).toContain('# TYPE velo_queue_depth gauge')
      expect(text).not.toMatch(/velo_queue_depth\{model="velo-tiny"\}/)
      // velo_upstream_up is for configured upstreams (asserted in serve-ollama.test.ts); managed
      // models report through velo_model_loaded.
      expect(text).toContain('# TYPE velo_upstream_up gauge')
      expect(text).toContain('process_cpu_seconds_total')
    })

    it('counts a request held by a stopped llama-server in velo_active_requests', async () => {
      const pid = required(managedPid(velo, 'velo-tiny'), 'a running velo-tiny')
      // SIGSTOP: the real engine keeps the request without answering, for as long as the test needs.
      process.kill(pid, 'SIGSTOP')
      try {
        const chat = postJson(`${velo.url}/v1/chat/completions`, {
          model: 'velo-tiny',
          messages: [{ role: 'user', content: 'Hi' }],
          max_tokens: 2,
        })
        await waitFor(
          'velo_active_requests{model="velo-tiny"} 1',
          async () => /velo_active_requests\{model="velo-tiny"\} 1\n/.test(await metricsText()),
          10_000,
        )
        process.kill(pid, 'SIGCONT')
        expect((await chat).status).toBe(200)
      } finally {
        process.kill(pid, 'SIGCONT')
      }
      expect(await metricsText()).not.toMatch(/velo_active_requests\{model="velo-tiny"\}/)
    })

    it('counts a request waiting on a paused model in velo_queue_depth', async () => {
      expect((await postJson(`${velo.url}/velo/models/velo-tiny/pause`, {})).status).toBe(200)
      let chat: ReturnType<typeof postJson> | undefined
      try {
        chat = postJson(`${velo.url}/v1/chat/completions`, {
          model: 'velo-tiny',
          messages: [{ role: 'user', content: 'Hi' }],
          max_tokens: 2,
        })
        await waitFor(
          'velo_queue_depth{model="velo-tiny"} 1',
          async () => /velo_queue_depth\{model="velo-tiny"\} 1\n/.test(await metricsText()),
          10_000,
        )
      } finally {
        await postJson(`${velo.url}/velo/models/velo-tiny/resume`, {})
      }
      expect((await chat).status).toBe(200)
      expect(await metricsText()).not.toMatch(/velo_queue_depth\{model="velo-tiny"\}/)
    })

    it('reports the same state in /velo/status', async () => {
      const { status, body } = await getJson<import('../../src/proxy/status-types.js').VeloStatus>(
        `${velo.url}/velo/status`,
      )
      expect(status).toBe(200)
      const tiny = body.models.find((model) => model.id === 'velo-tiny')
      expect(tiny).toMatchObject({ kind: 'managed', state: 'ready', aliases: ['tiny'], slotsTotal: 2 })
      expect(body.totals.requests).toBeGreaterThan(5)
      expect(body.totals.completionTokens).toBeGreaterThan(0)
      expect(body.recent.some((request) => request.model === 'velo-tiny' && request.status === 200)).toBe(
        true,
      )
      expect(body.upstreams.some((upstream) => upstream.kind === 'managed' && upstream.healthy)).toBe(true)
    })

    it('streams /velo/status as server-sent events', async () => {
      const controller = new AbortController()
      const response = await fetch(`${velo.url}/velo/status`, {
        headers: { accept: 'text/event-stream' },
        signal: controller.signal,
      })
      expect(response.headers.get('content-type')).toContain('text/event-stream')
      const reader = response.body?.getReader()
      const first = await reader?.read()
      controller.abort()
      const text = new TextDecoder().decode(first?.value)
      expect(text.startsWith('data: {')).toBe(true)
      expect(text).toContain('"models"')
    })

    it('answers /health and /ready', async () => {
      expect((await getJson(`${velo.url}/health`)).status).toBe(200)
      expect((await getJson(`${velo.url}/ready`)).status).toBe(200)
    })

    it('answers /api/version with velo’s version when no Ollama is upstream', async () => {
      const { status, body } = await getJson<{ version: string }>(`${velo.url}/api/version`)
      expect(status).toBe(200)
      // startVelo names the version 'test'; managed models have no Ollama version to echo.
      expect(body).toEqual({ version: 'test' })
      expect(await ollama.version()).toEqual({ version: 'test' })
    })

    it('unloads a managed model on POST /velo/models/{id}/unload: its llama-server exits', async () => {
      const pid = required(managedPid(velo, 'velo-tiny'), 'a running velo-tiny')
      expect(alive(pid)).toBe(true)
      const { status, body } = await postJson<{ model: string; action: string; state: string }>(
        `${velo.url}/velo/models/tiny/unload`,
        {},
      )
      expect(status).toBe(200)
      expect(body).toEqual({ model: 'velo-tiny', action: 'unload', state: 'unloaded' })
      expect((await modelStatus(velo, 'velo-tiny')).state).toBe('unloaded')
      expect(() => process.kill(pid, 0)).toThrow()
      expect(await metricsText()).toMatch(/velo_model_loaded\{model="velo-tiny"\} 0/)
    })

    it('starts the unloaded model again on the next request', async () => {
      const before = managedPid(velo, 'velo-tiny')
      expect(before).toBeUndefined()
      const completion = await openai.chat.completions.create({
        model: 'velo-tiny',
        messages: [{ role: 'user', content: 'Hi again' }],
        max_tokens: 4,
      })
      expect(completion.choices).toHaveLength(1)
      expect((await modelStatus(velo, 'velo-tiny')).state).toBe('ready')
      const pid = required(managedPid(velo, 'velo-tiny'), 'a running velo-tiny')
      expect(alive(pid)).toBe(true)
    })
  })
})
