import { Ollama } from 'ollama'
import OpenAI from 'openai'
import { describe, expect, it } from 'vitest'
import {
  createOllamaToOpenAIStream,
  createOpenAIToOllamaStream,
  type OllamaChatResponse,
  type OpenAIChatCompletion,
  ollamaChatResponseToOpenai,
  openaiChatResponseToOllama,
  streamErrorMessage,
  type TranslateContext,
} from '../../src/proxy/translate/index.js'
import {
  collectOllamaStream,
  collectOpenAIStream,
  fixture,
  ndjsonChunks,
  rawOf,
  responseOf,
  sseChunks,
  sseData,
} from '../fixtures/translate/load.js'

function context(overrides: Partial<TranslateContext> = {}): TranslateContext {
  return {
    model: 'my-model',
    id: 'chatcmpl-velo1',
    created: 1_700_000_000,
    includeUsage: true,
    startedAt: 1000,
    now: () => 1250,
    ...overrides,
  }
}

/** Runs upstream chunks through a translator the way the server does and returns the client's bytes. */
function translate(
  translator: { push(chunk: object): string; end(): string },
  chunks: object[],
): { body: string; writes: string[] } {
  const writes: string[] = []
  for (const chunk of chunks) writes.push(translator.push(chunk))
  writes.push(translator.end())
  return { body: writes.join(''), writes }
}

function ollamaToOpenAI(name: string, kind: 'chat' | 'completion', ctx = context()) {
  return translate(createOllamaToOpenAIStream(kind, ctx), ndjsonChunks(rawOf(name)))
}

function openAIToOllama(name: string, kind: 'chat' | 'generate', ctx = context()) {
  return translate(createOpenAIToOllamaStream(kind, ctx), sseChunks(rawOf(name)))
}

describe('Ollama NDJSON -> OpenAI SSE', () => {
  it('a captured chat stream reassembles to the same content, with role first and [DONE] last', () => {
    const upstream = collectOllamaStream(rawOf('ollama/chat-stream'))
    const { body } = ollamaToOpenAI('ollama/chat-stream', 'chat')
    const client = collectOpenAIStream(body)
    expect(client.content).toBe(upstream.content)
    expect(client.content.length).toBeGreaterThan(0)
    expect(client.role).toBe('assistant')
    expect(client.finishReason).toBe('length')
    expect(client.done).toBe(true)
    expect(client.wellFormed).toBe(true)
    expect(client.usage).toEqual({
      prompt_tokens: upstream.final?.['prompt_eval_count'],
      completion_tokens: upstream.final?.['eval_count'],
      total_tokens: Number(upstream.final?.['prompt_eval_count']) + Number(upstream.final?.['eval_count']),
    })
    const data = sseData(body)
    expect(data.at(-1)).toBe('[DONE]')
    const first = JSON.parse(data[0] ?? '{}') as { choices: Array<{ delta: { role?: string } }> }
    expect(first.choices[0]?.delta.role).toBe('assistant')
  })

  it('the same request streamed and not streamed reads the same through velo (same seed)', () => {
    const streamed = collectOpenAIStream(ollamaToOpenAI('ollama/chat-stream', 'chat').body)
    const plain = ollamaChatResponseToOpenai(responseOf<OllamaChatResponse>('ollama/chat'), context())
    expect(streamed.content).toBe(plain.choices[0]?.message.content)
    expect(streamed.finishReason).toBe(plain.choices[0]?.finish_reason)
    expect(streamed.usage).toEqual(plain.usage)
  })

  it('frame for frame like Ollama’s own OpenAI layer: chunk object, usage frame with no choices', () => {
    const own = sseData(rawOf('ollama/openai-compat-chat-stream'))
    const ours = sseData(ollamaToOpenAI('ollama/chat-stream', 'chat').body)
    const shape = (data: string) => {
      if (data === '[DONE]') return data
      const chunk = JSON.parse(data) as { object: string; choices: unknown[]; usage?: unknown }
      return `${chunk.object}:${chunk.choices.length}:${chunk.usage ? 'usage' : ''}`
    }
    expect(ours.slice(-2).map(shape)).toEqual(own.slice(-2).map(shape))
  })

  it('no usage frame unless the client asked', () => {
    const client = collectOpenAIStream(
      ollamaToOpenAI('ollama/chat-stream', 'chat', context({ includeUsage: false })).body,
    )
    expect(client.usage).toBeUndefined()
    expect(client.done).toBe(true)
  })

  it('tool calls go out as deltas with index and id, and finish with tool_calls', () => {
    const client = collectOpenAIStream(
      ollamaToOpenAI('hand-written/ollama-chat-tool-calls-stream', 'chat').body,
    )
    const plain = ollamaChatResponseToOpenai(
      responseOf<OllamaChatResponse>('hand-written/ollama-chat-tool-calls'),
      context(),
    )
    expect(client.finishReason).toBe('tool_calls')
    expect(client.toolCalls).toEqual(
      plain.choices[0]?.message.tool_calls?.map((call) => ({
        id: call.id,
        name: call.function.name,
        arguments: call.function.arguments,
      })),
    )
  })

  it('a generate stream becomes text_completion frames', () => {
    const upstream = collectOllamaStream(rawOf('ollama/generate-stream'))
    const { body } = ollamaToOpenAI('ollama/generate-stream', 'completion', context({ id: 'cmpl-1' }))
    const client = collectOpenAIStream(body)
    expect(client.content).toBe(upstream.content)
    expect(client.finishReason).toBe('length')
    expect(client.wellFormed).toBe(true)
    const objects = new Set(sseChunks(body).map((chunk) => (chunk as { object: string }).object))
    expect([...objects]).toEqual(['text_completion'])
  })

  it('an error line mid-stream becomes an OpenAI error frame and ends the stream', () => {
    const chunks = ndjsonChunks(rawOf('ollama/chat-stream')).slice(0, 3)
    const translator = createOllamaToOpenAIStream('chat', context())
    const { body } = translate(translator, [...chunks, { error: 'model runner crashed' }, chunks[0] ?? {}])
    const client = collectOpenAIStream(body)
    expect(client.error).toEqual({ message: 'model runner crashed', type: 'upstream_error', code: null })
    expect(client.done).toBe(false)
    expect(sseData(body).at(-1)).toContain('model runner crashed')
  })

  it('an upstream that stops before done is reported, not passed off as finished', () => {
    const chunks = ndjsonChunks(rawOf('ollama/chat-stream')).slice(0, 3)
    const client = collectOpenAIStream(translate(createOllamaToOpenAIStream('chat', context()), chunks).body)
    expect(client.finishReason).toBeNull()
    expect(client.error).toMatchObject({ message: 'the upstream ended the stream before it finished' })
  })

  it('the official openai client reads the stream and assembles the tool calls', async () => {
    const { body } = ollamaToOpenAI('hand-written/ollama-chat-tool-calls-stream', 'chat')
    const client = new OpenAI({
      apiKey: 'none',
      baseURL: 'http://velo.invalid/v1',
      fetch: async () => new Response(body, { headers: { 'content-type': 'text/event-stream' } }),
    })
    const stream = client.chat.completions.stream({
      model: 'my-model',
      messages: [{ role: 'user', content: 'x' }],
      stream_options: { include_usage: true },
    })
    const final = await stream.finalChatCompletion()
    expect(final.choices[0]?.finish_reason).toBe('tool_calls')
    expect(
      final.choices[0]?.message.tool_calls?.map((call) => call.type === 'function' && call.function),
    ).toEqual([
      { name: 'get_weather', arguments: '{"city":"Paris","unit":"c"}' },
      { name: 'get_weather', arguments: '{"city":"Oslo"}' },
    ])
    expect(final.usage?.completion_tokens).toBe(31)
  })

  it('the official openai client reads a translated completion stream', async () => {
    const upstream = collectOllamaStream(rawOf('ollama/generate-stream'))
    const { body } = ollamaToOpenAI('ollama/generate-stream', 'completion', context({ id: 'cmpl-1' }))
    const client = new OpenAI({
      apiKey: 'none',
      baseURL: 'http://velo.invalid/v1',
      fetch: async () => new Response(body, { headers: { 'content-type': 'text/event-stream' } }),
    })
    const stream = await client.completions.create({ model: 'my-model', prompt: 'x', stream: true })
    let text = ''
    let finish: string | null | undefined
    for await (const chunk of stream) {
      text += chunk.choices[0]?.text ?? ''
      finish = chunk.choices[0]?.finish_reason ?? finish
    }
    expect(text).toBe(upstream.content)
    expect(finish).toBe('length')
  })
})

describe('upstream errors', () => {
  it('reads the message of either format, and nothing from a normal chunk', () => {
    expect(streamErrorMessage(fixture('ollama/error-unknown-model').response)).toBe("model 'nope' not found")
    expect(streamErrorMessage(fixture('llama-server/error-bad-messages').response)).toBe(
      "Expected 'messages' to be an array",
    )
    expect(streamErrorMessage(ndjsonChunks(rawOf('ollama/chat-stream'))[0])).toBeUndefined()
    expect(streamErrorMessage('text')).toBeUndefined()
  })
})

describe('OpenAI SSE -> Ollama NDJSON', () => {
  it('a captured llama-server chat stream reassembles with counts and durations from usage and timings', () => {
    const upstream = collectOpenAIStream(rawOf('llama-server/chat-stream'))
    const { body } = openAIToOllama('llama-server/chat-stream', 'chat')
    const client = collectOllamaStream(body)
    expect(client.content).toBe(upstream.content)
    expect(client.done).toBe(true)
    expect(client.doneReason).toBe('length')
    expect(client.linesAfterDone).toBe(0)
    const last = sseChunks(rawOf('llama-server/chat-stream')).at(-1) as {
      usage: { prompt_tokens: number; completion_tokens: number }
      timings: { prompt_ms: number; predicted_ms: number }
    }
    expect(client.final).toMatchObject({
      model: 'my-model',
      message: { role: 'assistant', content: '' },
      total_duration: 250_000_000,
      prompt_eval_count: last.usage.prompt_tokens,
      eval_count: last.usage.completion_tokens,
      prompt_eval_duration: Math.round(last.timings.prompt_ms * 1e6),
      eval_duration: Math.round(last.timings.predicted_ms * 1e6),
    })
  })

  it('without a usage chunk the counts come from timings', () => {
    const client = collectOllamaStream(openAIToOllama('llama-server/chat-stream-no-usage', 'chat').body)
    const last = sseChunks(rawOf('llama-server/chat-stream-no-usage')).at(-1) as {
      timings: { prompt_n: number; cache_n: number; predicted_n: number }
    }
    expect(client.final?.['prompt_eval_count']).toBe(last.timings.prompt_n + last.timings.cache_n)
    expect(client.final?.['eval_count']).toBe(last.timings.predicted_n)
  })

  it('the same request streamed and not streamed reads the same through velo', () => {
    const streamed = collectOllamaStream(openAIToOllama('llama-server/chat-stream', 'chat').body)
    const plain = openaiChatResponseToOllama(responseOf<OpenAIChatCompletion>('llama-server/chat'), context())
    expect(streamed.content).toBe(plain.message.content)
    expect(streamed.doneReason).toBe(plain.done_reason)
    expect(streamed.final?.['eval_count']).toBe(plain.eval_count)
    expect(streamed.final?.['prompt_eval_count']).toBe(plain.prompt_eval_count)
  })

  it('tool call deltas are assembled into whole Ollama tool calls before the done line', () => {
    const { body } = openAIToOllama('hand-written/llama-server-chat-tool-calls-stream', 'chat')
    const client = collectOllamaStream(body)
    const plain = openaiChatResponseToOllama(
      responseOf<OpenAIChatCompletion>('hand-written/llama-server-chat-tool-calls'),
      context(),
    )
    expect(client.toolCalls).toEqual(
      plain.message.tool_calls?.map((call) => ({
        id: call.id,
        name: call.function.name,
        arguments: call.function.arguments,
      })),
    )
    expect(client.doneReason).toBe('stop')
    const lines = ndjsonChunks(body) as Array<{ done: boolean; message: { tool_calls?: unknown[] } }>
    expect(lines.findIndex((line) => line.message.tool_calls)).toBe(lines.length - 2)
  })

  it('a JSON-schema stream reassembles to the non-streamed content shape', () => {
    const client = collectOllamaStream(openAIToOllama('llama-server/chat-json-schema-stream', 'chat').body)
    expect(client.content.startsWith('{')).toBe(true)
    expect(client.done).toBe(true)
  })

  it('a text_completion stream becomes generate lines', () => {
    const upstream = collectOpenAIStream(rawOf('llama-server/completion-stream'))
    const { body } = openAIToOllama('llama-server/completion-stream', 'generate')
    const client = collectOllamaStream(body)
    expect(client.content).toBe(upstream.content)
    expect(client.doneReason).toBe('length')
    for (const line of ndjsonChunks(body)) {
      expect(Object.keys(line)).toContain('response')
      expect(Object.keys(line)).not.toContain('message')
    }
  })

  it('a chat stream answering a templated generate becomes generate lines', () => {
    const upstream = collectOpenAIStream(rawOf('llama-server/chat-stream'))
    const client = collectOllamaStream(openAIToOllama('llama-server/chat-stream', 'generate').body)
    expect(client.content).toBe(upstream.content)
    expect(client.done).toBe(true)
  })

  it('an error chunk becomes an Ollama error line and ends the stream', () => {
    const chunks = sseChunks(rawOf('llama-server/chat-stream')).slice(0, 3)
    const error = { error: { code: 500, message: 'slot unavailable', type: 'server_error' } }
    const { body } = translate(createOpenAIToOllamaStream('chat', context()), [...chunks, error])
    const client = collectOllamaStream(body)
    expect(client.error).toBe('slot unavailable')
    expect(client.done).toBe(false)
  })

  it('an upstream that stops before finishing is reported', () => {
    const chunks = sseChunks(rawOf('llama-server/chat-stream')).slice(0, 3)
    const client = collectOllamaStream(translate(createOpenAIToOllamaStream('chat', context()), chunks).body)
    expect(client.error).toBe('the upstream ended the stream before it finished')
  })

  it('with the default clock, durations are wall time since startedAt (no timings, no usage)', () => {
    const startedAt = performance.now()
    const translator = createOpenAIToOllamaStream('chat', {
      model: 'm',
      id: 'chatcmpl-1',
      created: 1,
      includeUsage: false,
      startedAt,
    })
    translator.push({ choices: [{ index: 0, delta: { content: 'hi' }, finish_reason: null }] })
    translator.push({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })
    const final = collectOllamaStream(translator.end()).final ?? {}
    const elapsedNs = Math.ceil((performance.now() - startedAt) * 1e6)
    expect(final['total_duration']).toBeGreaterThanOrEqual(0)
    expect(final['total_duration']).toBeLessThanOrEqual(elapsedNs)
    expect(Number(final['prompt_eval_duration']) + Number(final['eval_duration'])).toBe(
      final['total_duration'],
    )
  })

  it('end() twice writes nothing more', () => {
    const translator = createOpenAIToOllamaStream('chat', context())
    for (const chunk of sseChunks(rawOf('llama-server/chat-stream'))) translator.push(chunk)
    expect(translator.end()).not.toBe('')
    expect(translator.end()).toBe('')
    expect(
      translator.push({ choices: [{ index: 0, delta: { content: 'late' }, finish_reason: null }] }),
    ).toBe('')
  })

  it('the official ollama client reads the stream, tool calls included', async () => {
    const { body } = openAIToOllama('hand-written/llama-server-chat-tool-calls-stream', 'chat')
    const ollama = new Ollama({
      host: 'http://velo.invalid',
      fetch: async () => new Response(body, { headers: { 'content-type': 'application/x-ndjson' } }),
    })
    const parts = await ollama.chat({
      model: 'my-model',
      messages: [{ role: 'user', content: 'x' }],
      stream: true,
    })
    const calls: unknown[] = []
    let done = false
    for await (const part of parts) {
      calls.push(...(part.message.tool_calls ?? []))
      done ||= part.done
    }
    expect(done).toBe(true)
    expect(calls).toHaveLength(2)
  })

  it('the official ollama client reads a translated generate stream', async () => {
    const upstream = collectOpenAIStream(rawOf('llama-server/completion-stream'))
    const { body } = openAIToOllama('llama-server/completion-stream', 'generate')
    const ollama = new Ollama({
      host: 'http://velo.invalid',
      fetch: async () => new Response(body, { headers: { 'content-type': 'application/x-ndjson' } }),
    })
    const parts = await ollama.generate({ model: 'my-model', prompt: 'x', stream: true })
    let text = ''
    let last: { done: boolean; eval_count?: number } | undefined
    for await (const part of parts) {
      text += part.response
      last = part
    }
    expect(text).toBe(upstream.content)
    expect(last?.done).toBe(true)
    expect(last?.eval_count).toBe((upstream.usage as { completion_tokens: number }).completion_tokens)
  })
})
