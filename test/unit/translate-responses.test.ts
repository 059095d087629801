import { describe, expect, it } from 'vitest'
import {
  base64ToFloats,
  floatsToBase64,
  type OllamaChatResponse,
  type OllamaEmbeddingsResponse,
  type OllamaEmbedResponse,
  type OllamaGenerateResponse,
  type OpenAIChatCompletion,
  type OpenAIEmbeddingList,
  type OpenAITextCompletion,
  ollamaChatResponseToOpenai,
  ollamaEmbedResponseToOpenai,
  ollamaGenerateResponseToOpenaiCompletion,
  openaiChatResponseToOllama,
  openaiCompletionResponseToOllamaGenerate,
  openaiEmbeddingResponseToOllama,
  openaiEmbeddingResponseToOllamaLegacy,
} from '../../src/proxy/translate/index.js'
import { responseOf } from '../fixtures/translate/load.js'

const ctx = { model: 'my-model', id: 'chatcmpl-velo1', created: 1_700_000_000 }
/** A request that arrived 250 ms before the response was translated. */
const timing = { model: 'my-model', startedAt: 1000, now: () => 1250 }

describe('Ollama -> OpenAI (captured from Ollama)', () => {
  it('a chat response becomes a chat.completion with usage and finish_reason', () => {
    const res = responseOf<OllamaChatResponse>('ollama/chat')
    const out = ollamaChatResponseToOpenai(res, ctx)
    expect(out).toEqual({
      id: 'chatcmpl-velo1',
      object: 'chat.completion',
      created: 1_700_000_000,
      model: 'my-model',
      choices: [
        { index: 0, message: { role: 'assistant', content: res.message.content }, finish_reason: 'length' },
      ],
      usage: {
        prompt_tokens: res.prompt_eval_count,
        completion_tokens: res.eval_count,
        total_tokens: (res.prompt_eval_count ?? 0) + (res.eval_count ?? 0),
      },
    })
  })

  it('matches what Ollama’s own OpenAI layer reports for the same request', () => {
    const own = responseOf<OpenAIChatCompletion>('ollama/openai-compat-chat')
    const ours = ollamaChatResponseToOpenai(responseOf<OllamaChatResponse>('ollama/chat'), ctx)
    expect(ours.usage).toEqual(own.usage)
    expect(ours.choices[0]?.finish_reason).toBe(own.choices[0]?.finish_reason)
    expect(ours.object).toBe(own.object)
  })

  it('done_reason stop maps to stop', () => {
    const res = { ...responseOf<OllamaChatResponse>('ollama/chat'), done_reason: 'stop' }
    expect(ollamaChatResponseToOpenai(res, ctx).choices[0]?.finish_reason).toBe('stop')
  })

  it('tool calls become OpenAI tool_calls with JSON string arguments and finish_reason tool_calls', () => {
    const res = responseOf<OllamaChatResponse>('hand-written/ollama-chat-tool-calls')
    const choice = ollamaChatResponseToOpenai(res, ctx).choices[0]
    expect(choice?.finish_reason).toBe('tool_calls')
    expect(choice?.message.content).toBeNull()
    expect(choice?.message.tool_calls).toEqual([
      {
        id: 'call_k3x9p2wq',
        type: 'function',
        function: { name: 'get_weather', arguments: '{"city":"Paris","unit":"c"}' },
      },
      {
        id: 'call_7bn4zt0e',
        type: 'function',
        function: { name: 'get_weather', arguments: '{"city":"Oslo"}' },
      },
    ])
  })

  it('makes up tool call ids when Ollama has none', () => {
    const res: OllamaChatResponse = {
      model: 'm',
      created_at: '',
      message: { role: 'assistant', content: '', tool_calls: [{ function: { name: 'f', arguments: {} } }] },
      done: true,
      done_reason: 'stop',
    }
    expect(ollamaChatResponseToOpenai(res, ctx).choices[0]?.message.tool_calls?.[0]?.id).toBe('call_velo1_0')
  })

  it('thinking and logprobs carry over', () => {
    const res = responseOf<OllamaChatResponse>('ollama/chat-logprobs')
    const out = ollamaChatResponseToOpenai({ ...res, message: { ...res.message, thinking: 'hm' } }, ctx)
    expect(out.choices[0]?.message.reasoning_content).toBe('hm')
    expect(out.choices[0]?.logprobs?.content).toEqual(res.logprobs)
  })

  it('a generate response becomes a text_completion', () => {
    const res = responseOf<OllamaGenerateResponse>('ollama/generate')
    expect(ollamaGenerateResponseToOpenaiCompletion(res, { ...ctx, id: 'cmpl-1' })).toEqual({
      id: 'cmpl-1',
      object: 'text_completion',
      created: 1_700_000_000,
      model: 'my-model',
      choices: [{ index: 0, text: res.response, finish_reason: 'length', logprobs: null }],
      usage: {
        prompt_tokens: res.prompt_eval_count,
        completion_tokens: res.eval_count,
        total_tokens: (res.prompt_eval_count ?? 0) + (res.eval_count ?? 0),
      },
    })
  })

  it('embed becomes an embedding list, as floats or as base64 float32', () => {
    const res = responseOf<OllamaEmbedResponse>('ollama/embed')
    const floats = ollamaEmbedResponseToOpenai(res, { model: 'my-model', encodingFormat: 'float' })
    expect(floats.data.map((item) => item.index)).toEqual([0, 1])
    expect(floats.data[1]?.embedding).toEqual(res.embeddings[1])
    expect(floats.usage).toEqual({
      prompt_tokens: res.prompt_eval_count,
      total_tokens: res.prompt_eval_count,
    })
    const encoded = ollamaEmbedResponseToOpenai(res, { model: 'my-model', encodingFormat: 'base64' })
    const first = encoded.data[0]?.embedding
    expect(typeof first).toBe('string')
    const decoded = base64ToFloats(first as string)
    expect(decoded).toHaveLength(res.embeddings[0]?.length ?? -1)
    decoded.forEach((value, i) => {
      expect(value).toBeCloseTo(res.embeddings[0]?.[i] ?? Number.NaN, 6)
    })
  })

  it('the legacy embeddings answer becomes a one-item list', () => {
    const res = responseOf<OllamaEmbeddingsResponse>('ollama/embeddings-legacy')
    const out = ollamaEmbedResponseToOpenai(res, { model: 'my-model' })
    expect(out.data).toEqual([{ object: 'embedding', index: 0, embedding: res.embedding }])
  })
})

describe('OpenAI -> Ollama (captured from llama-server)', () => {
  it('a chat.completion becomes a done chat response with durations from timings', () => {
    const res = responseOf<OpenAIChatCompletion>('llama-server/chat')
    const out = openaiChatResponseToOllama(res, timing)
    const timings = res.timings ?? {}
    expect(out).toMatchObject({
      model: 'my-model',
      message: { role: 'assistant', content: res.choices[0]?.message.content },
      done: true,
      done_reason: 'length',
      total_duration: 250_000_000,
      prompt_eval_count: res.usage?.prompt_tokens,
      prompt_eval_duration: Math.round((timings.prompt_ms ?? 0) * 1e6),
      eval_count: res.usage?.completion_tokens,
      eval_duration: Math.round((timings.predicted_ms ?? 0) * 1e6),
    })
    expect(out.load_duration).toBe(250_000_000 - (out.prompt_eval_duration ?? 0) - (out.eval_duration ?? 0))
    expect(Number.isNaN(Date.parse(out.created_at))).toBe(false)
  })

  it('without timings, durations come from wall time', () => {
    const { timings: _dropped, ...res } = responseOf<OpenAIChatCompletion>('llama-server/chat')
    const out = openaiChatResponseToOllama(res, timing)
    expect(out.total_duration).toBe(250_000_000)
    expect(out.eval_duration).toBe(250_000_000)
    expect(out.prompt_eval_duration).toBe(0)
    expect(out.load_duration).toBe(0)
  })

  it('tool calls get parsed arguments, ids and done_reason stop', () => {
    const res = responseOf<OpenAIChatCompletion>('hand-written/llama-server-chat-tool-calls')
    const out = openaiChatResponseToOllama(res, timing)
    expect(out.done_reason).toBe('stop')
    expect(out.message).toEqual({
      role: 'assistant',
      content: '',
      tool_calls: [
        {
          id: 'Xk2mP9qLr4TfWz8aNcVb1yHs3uJd6eGo',
          function: { index: 0, name: 'get_weather', arguments: { city: 'Paris', unit: 'c' } },
        },
        {
          id: 'Qa7nB2vLm9XcZ4tRy6WpK1sHd8FjE3gU',
          function: { index: 1, name: 'get_weather', arguments: { city: 'Oslo' } },
        },
      ],
    })
  })

  it('repairs almost-JSON tool arguments a small model wrote', () => {
    const res = responseOf<OpenAIChatCompletion>('hand-written/llama-server-chat-tool-calls')
    const broken = structuredClone(res)
    const call = broken.choices[0]?.message.tool_calls?.[0]
    if (!call) throw new Error('fixture has a tool call')
    call.function.arguments = "{city: 'Paris',"
    expect(openaiChatResponseToOllama(broken, timing).message.tool_calls?.[0]?.function.arguments).toEqual({
      city: 'Paris',
    })
    call.function.arguments = 'not json at all ]]'
    expect(openaiChatResponseToOllama(broken, timing).message.tool_calls?.[0]?.function.arguments).toEqual({})
  })

  it('reasoning_content becomes thinking; logprobs lose llama-server token ids', () => {
    const thought = openaiChatResponseToOllama(responseOf('hand-written/llama-server-chat-reasoning'), timing)
    expect(thought.message).toEqual({
      role: 'assistant',
      content: 'Paris.',
      thinking: 'The user wants a capital.',
    })
    const res = responseOf<OpenAIChatCompletion>('llama-server/chat-logprobs')
    const out = openaiChatResponseToOllama(res, timing)
    const first = res.choices[0]?.logprobs?.content?.[0]
    expect(out.logprobs?.[0]).toEqual({
      token: first?.token,
      logprob: first?.logprob,
      bytes: first?.bytes,
      top_logprobs: first?.top_logprobs?.map(({ token, logprob, bytes }) => ({ token, logprob, bytes })),
    })
  })

  it('a text_completion becomes a done generate response', () => {
    const res = responseOf<OpenAITextCompletion>('llama-server/completion')
    const out = openaiCompletionResponseToOllamaGenerate(res, timing)
    expect(out).toMatchObject({
      model: 'my-model',
      response: res.choices[0]?.text,
      done: true,
      done_reason: 'length',
      prompt_eval_count: res.usage?.prompt_tokens,
      eval_count: res.usage?.completion_tokens,
    })
  })

  it('a chat.completion answering a templated generate becomes a generate response', () => {
    const res = responseOf<OpenAIChatCompletion>('llama-server/chat')
    expect(openaiCompletionResponseToOllamaGenerate(res, timing).response).toBe(
      res.choices[0]?.message.content,
    )
  })

  it('embedding lists (float and base64) become Ollama embed and legacy embeddings', () => {
    const floats = responseOf<OpenAIEmbeddingList>('llama-server/embedding')
    const out = openaiEmbeddingResponseToOllama(floats, timing)
    expect(out.model).toBe('my-model')
    expect(out.embeddings).toEqual(floats.data.map((item) => item.embedding))
    expect(out.prompt_eval_count).toBe(floats.usage.prompt_tokens)
    expect(out.total_duration).toBe(250_000_000)

    const single = responseOf<OpenAIEmbeddingList>('llama-server/embedding-single')
    const encoded = responseOf<OpenAIEmbeddingList>('llama-server/embedding-base64')
    const fromBase64 = openaiEmbeddingResponseToOllamaLegacy(encoded).embedding
    const expected = single.data[0]?.embedding as number[]
    expect(fromBase64).toHaveLength(expected.length)
    fromBase64.forEach((value, i) => {
      expect(value).toBeCloseTo(expected[i] ?? Number.NaN, 6)
    })
  })

  it('with the default clock, durations are wall time since startedAt', () => {
    const startedAt = performance.now()
    const { timings: _dropped, ...res } = responseOf<OpenAIChatCompletion>('llama-server/chat')
    const out = openaiChatResponseToOllama(res, { model: 'm', startedAt })
    const embed = openaiEmbeddingResponseToOllama(responseOf('llama-server/embedding'), {
      model: 'm',
      startedAt,
    })
    const elapsedNs = Math.ceil((performance.now() - startedAt) * 1e6)
    for (const total of [out.total_duration, embed.total_duration]) {
      expect(total).toBeGreaterThanOrEqual(0)
      expect(total).toBeLessThanOrEqual(elapsedNs)
    }
  })

  it('orders embeddings by index', () => {
    const res: OpenAIEmbeddingList = {
      object: 'list',
      model: 'm',
      data: [
        { object: 'embedding', index: 1, embedding: [2] },
        { object: 'embedding', index: 0, embedding: [1] },
      ],
      usage: { prompt_tokens: 2, total_tokens: 2 },
    }
    expect(openaiEmbeddingResponseToOllama(res, timing).embeddings).toEqual([[1], [2]])
  })

  it('float32 base64 encoding round trips', () => {
    const values = [0, 1.5, -2.25, 1e-3]
    expect(base64ToFloats(floatsToBase64(values))).toEqual(Array.from(Float32Array.from(values)))
  })
})

describe('round trips of responses', () => {
  it('Ollama -> OpenAI -> Ollama keeps content, tool calls, reason and counts', () => {
    const res = responseOf<OllamaChatResponse>('hand-written/ollama-chat-tool-calls')
    const back = openaiChatResponseToOllama(ollamaChatResponseToOpenai(res, ctx), timing)
    expect(back.message).toEqual(res.message)
    expect(back.done_reason).toBe(res.done_reason)
    expect(back.prompt_eval_count).toBe(res.prompt_eval_count)
    expect(back.eval_count).toBe(res.eval_count)
  })

  it('OpenAI -> Ollama -> OpenAI keeps content, tool calls, reason and usage', () => {
    const res = responseOf<OpenAIChatCompletion>('hand-written/llama-server-chat-tool-calls')
    const back = ollamaChatResponseToOpenai(openaiChatResponseToOllama(res, timing), ctx)
    expect(back.choices[0]?.message.tool_calls).toEqual(res.choices[0]?.message.tool_calls)
    expect(back.choices[0]?.finish_reason).toBe('tool_calls')
    expect(back.usage).toEqual({
      prompt_tokens: res.usage?.prompt_tokens,
      completion_tokens: res.usage?.completion_tokens,
      total_tokens: res.usage?.total_tokens,
    })
  })
})
