import { describe, expect, it } from 'vitest'
import { VeloError } from '../../src/core/errors.js'
import {
  type OllamaChatRequest,
  type OpenAIChatRequest,
  ollamaChatToOpenai,
  ollamaEmbedToOpenai,
  ollamaGenerateTarget,
  ollamaGenerateToOpenaiChat,
  ollamaGenerateToOpenaiCompletion,
  openaiChatToOllama,
  openaiCompletionToOllamaGenerate,
  openaiEmbeddingToOllama,
  parseOllamaChatRequest,
  parseOllamaEmbeddingsRequest,
  parseOllamaEmbedRequest,
  parseOllamaGenerateRequest,
  parseOpenAIChatRequest,
  parseOpenAICompletionRequest,
  parseOpenAIEmbeddingRequest,
} from '../../src/proxy/translate/index.js'
import { clientRequests } from '../fixtures/translate/load.js'

const weather = {
  type: 'function' as const,
  function: {
    name: 'get_weather',
    description: 'Current weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
}
const time = { type: 'function' as const, function: { name: 'get_time', parameters: { type: 'object' } } }
const personSchema = { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] }
const PNG = 'iVBORw0KGgo='

function openai(body: Record<string, unknown>): OpenAIChatRequest {
  return parseOpenAIChatRequest({ model: 'qwen', ...body })
}

function ollama(body: Record<string, unknown>): OllamaChatRequest {
  return parseOllamaChatRequest({ model: 'qwen', ...body })
}

function badRequest(run: () => unknown): string {
  try {
    run()
  } catch (error) {
    if (error instanceof VeloError && error.status === 400) return error.message
    throw error
  }
  throw new Error('expected a 400')
}

describe('OpenAI chat -> Ollama chat', () => {
  it('maps sampling, limits, stop and seed into options, and stream explicitly', () => {
    const out = openaiChatToOllama(
      openai({
        messages: [{ role: 'user', content: 'hi' }],
        temperature: 0.2,
        top_p: 0.9,
        top_k: 20,
        min_p: 0.05,
        seed: 7,
        stop: 'END',
        frequency_penalty: 0.1,
        presence_penalty: 0.3,
        repeat_penalty: 1.1,
        max_tokens: 100,
      }),
    )
    expect(out).toEqual({
      model: 'qwen',
      messages: [{ role: 'user', content: 'hi' }],
      stream: false,
      options: {
        num_predict: 100,
        temperature: 0.2,
        top_p: 0.9,
        top_k: 20,
        min_p: 0.05,
        seed: 7,
        stop: ['END'],
        frequency_penalty: 0.1,
        presence_penalty: 0.3,
        repeat_penalty: 1.1,
      },
    })
  })

  it('prefers max_completion_tokens over max_tokens', () => {
    const out = openaiChatToOllama(
      openai({ messages: [{ role: 'user', content: 'hi' }], max_tokens: 5, max_completion_tokens: 9 }),
    )
    expect(out.options?.num_predict).toBe(9)
  })

  it('uses the upstream model name when given, and sends no options when none are set', () => {
    const out = openaiChatToOllama(openai({ messages: [{ role: 'user', content: 'hi' }], stream: true }), {
      model: 'qwen2.5:7b',
    })
    expect(out).toEqual({ model: 'qwen2.5:7b', messages: [{ role: 'user', content: 'hi' }], stream: true })
  })

  it('maps assistant tool calls (JSON string -> object) and tool results (id -> name)', () => {
    const out = openaiChatToOllama(
      openai({
        messages: [
          { role: 'developer', content: 'Be brief.' },
          { role: 'user', content: 'Weather?' },
          {
            role: 'assistant',
            content: null,
            tool_calls: [
              {
                id: 'call_1',
                type: 'function',
                function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
              },
              { id: 'call_2', type: 'function', function: { name: 'get_time', arguments: '' } },
            ],
          },
          { role: 'tool', tool_call_id: 'call_2', content: '12:00' },
          { role: 'tool', tool_call_id: 'call_1', content: '{"temp":21}' },
        ],
        tools: [weather, time],
      }),
    )
    expect(out.messages).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Weather?' },
      {
        role: 'assistant',
        content: '',
        tool_calls: [
          { id: 'call_1', function: { index: 0, name: 'get_weather', arguments: { city: 'Paris' } } },
          { id: 'call_2', function: { index: 1, name: 'get_time', arguments: {} } },
        ],
      },
      { role: 'tool', content: '12:00', tool_name: 'get_time', tool_call_id: 'call_2' },
      { role: 'tool', content: '{"temp":21}', tool_name: 'get_weather', tool_call_id: 'call_1' },
    ])
    expect(out.tools).toEqual([weather, time])
  })

  it('refuses tool call arguments that are not a JSON object, naming the field', () => {
    const req = openai({
      messages: [
        { role: 'user', content: 'x' },
        {
          role: 'assistant',
          tool_calls: [{ id: 'a', type: 'function', function: { name: 'f', arguments: '{city' } }],
        },
      ],
    })
    expect(badRequest(() => openaiChatToOllama(req))).toBe(
      'messages[1].tool_calls[0].function.arguments: expected a JSON object in a string, got "{city"',
    )
  })

  it('applies tool_choice: none drops the tools, a named function keeps only it', () => {
    const base = { messages: [{ role: 'user', content: 'x' }], tools: [weather, time] }
    expect(openaiChatToOllama(openai({ ...base, tool_choice: 'none' })).tools).toBeUndefined()
    expect(openaiChatToOllama(openai({ ...base, tool_choice: 'auto' })).tools).toEqual([weather, time])
    expect(openaiChatToOllama(openai({ ...base, tool_choice: 'required' })).tools).toEqual([weather, time])
    const named = openai({ ...base, tool_choice: { type: 'function', function: { name: 'get_time' } } })
    expect(openaiChatToOllama(named).tools).toEqual([time])
    const unknown = openai({ ...base, tool_choice: { type: 'function', function: { name: 'nope' } } })
    expect(badRequest(() => openaiChatToOllama(unknown))).toMatch(/^tool_choice\.function\.name: /)
  })

  it('maps response_format to format', () => {
    const messages = [{ role: 'user', content: 'x' }]
    expect(openaiChatToOllama(openai({ messages, response_format: { type: 'json_object' } })).format).toBe(
      'json',
    )
    const schema = openai({
      messages,
      response_format: { type: 'json_schema', json_schema: { name: 'person', schema: personSchema } },
    })
    expect(openaiChatToOllama(schema).format).toEqual(personSchema)
    expect(openaiChatToOllama(openai({ messages, response_format: { type: 'text' } })).format).toBeUndefined()
    const llamaStyle = openai({ messages, response_format: { type: 'json_object', schema: personSchema } })
    expect(openaiChatToOllama(llamaStyle).format).toEqual(personSchema)
  })

  it('joins text parts and moves base64 images to images', () => {
    const out = openaiChatToOllama(
      openai({
        messages: [
          {
            role: 'user',
            content: [
              { type: 'text', text: 'What is' },
              { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } },
              { type: 'text', text: 'in it?' },
            ],
          },
        ],
      }),
    )
    expect(out.messages).toEqual([{ role: 'user', content: 'What is\nin it?', images: [PNG] }])
  })

  it('refuses what Ollama cannot take: remote images, audio parts, n > 1', () => {
    const remote = openai({
      messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://x/y.png' } }] }],
    })
    expect(badRequest(() => openaiChatToOllama(remote))).toMatch(/^messages\[0\]\.content\[0\]\.image_url: /)
    const audio = openai({
      messages: [
        { role: 'user', content: [{ type: 'input_audio', input_audio: { data: 'x', format: 'wav' } }] },
      ],
    })
    expect(badRequest(() => openaiChatToOllama(audio))).toBe(
      'messages[0].content[0].type: an Ollama upstream takes text and image_url parts, got "input_audio"',
    )
    const many = openai({ messages: [{ role: 'user', content: 'x' }], n: 2 })
    expect(badRequest(() => openaiChatToOllama(many))).toBe(
      'n: an Ollama upstream returns one choice per request, got 2',
    )
  })

  it('maps logprobs, keep_alive, reasoning effort and thinking', () => {
    const out = openaiChatToOllama(
      openai({
        messages: [
          { role: 'user', content: 'x' },
          { role: 'assistant', content: 'y', reasoning_content: 'hmm' },
          { role: 'user', content: 'z' },
        ],
        logprobs: true,
        top_logprobs: 3,
        keep_alive: '10m',
        reasoning_effort: 'low',
      }),
    )
    expect(out.logprobs).toBe(true)
    expect(out.top_logprobs).toBe(3)
    expect(out.keep_alive).toBe('10m')
    expect(out.think).toBe('low')
    expect(out.messages?.[1]).toEqual({ role: 'assistant', content: 'y', thinking: 'hmm' })
  })

  it('does not carry OpenAI-only or llama-server-only fields to Ollama', () => {
    const out = openaiChatToOllama(
      openai({
        messages: [{ role: 'user', content: 'x' }],
        id_slot: 2,
        cache_prompt: true,
        logit_bias: { 1: 2 },
      }),
    )
    expect(Object.keys(out).sort()).toEqual(['messages', 'model', 'stream'])
  })
})

describe('Ollama chat -> OpenAI chat', () => {
  it('maps options to OpenAI and llama-server fields, drops load-time options, streams by default', () => {
    const out = ollamaChatToOpenai(
      ollama({
        messages: [{ role: 'user', content: 'hi' }],
        options: {
          num_predict: 64,
          temperature: 0.1,
          top_k: 30,
          top_p: 0.8,
          min_p: 0.1,
          seed: 3,
          stop: ['\n'],
          repeat_penalty: 1.2,
          repeat_last_n: 32,
          num_keep: 4,
          num_ctx: 8192,
          num_gpu: 99,
          num_thread: 8,
          num_batch: 512,
        },
        keep_alive: '5m',
      }),
    )
    expect(out).toEqual({
      model: 'qwen',
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
      stream_options: { include_usage: true },
      max_tokens: 64,
      temperature: 0.1,
      top_k: 30,
      top_p: 0.8,
      min_p: 0.1,
      seed: 3,
      stop: ['\n'],
      repeat_penalty: 1.2,
      repeat_last_n: 32,
      n_keep: 4,
    })
  })

  it('treats num_predict -1 and -2 as no limit', () => {
    for (const limit of [-1, -2]) {
      const out = ollamaChatToOpenai(ollama({ messages: [], options: { num_predict: limit }, stream: false }))
      expect(out.max_tokens).toBeUndefined()
    }
  })

  it('maps tool calls (object -> JSON string), results (name -> id) and images', () => {
    const out = ollamaChatToOpenai(
      ollama({
        stream: false,
        messages: [
          { role: 'user', content: 'Look', images: [PNG] },
          {
            role: 'assistant',
            content: '',
            tool_calls: [
              { function: { name: 'get_weather', arguments: { city: 'Paris' } } },
              { function: { name: 'get_weather', arguments: { city: 'Oslo' } } },
            ],
          },
          { role: 'tool', tool_name: 'get_weather', content: 'sunny' },
          { role: 'tool', tool_name: 'get_weather', content: 'rain' },
        ],
        tools: [weather],
      }),
    )
    expect(out.messages).toEqual([
      {
        role: 'user',
        content: [
          { type: 'text', text: 'Look' },
          { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } },
        ],
      },
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          {
            id: 'call_1_0',
            type: 'function',
            function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
          },
          {
            id: 'call_1_1',
            type: 'function',
            function: { name: 'get_weather', arguments: '{"city":"Oslo"}' },
          },
        ],
      },
      { role: 'tool', content: 'sunny', tool_call_id: 'call_1_0' },
      { role: 'tool', content: 'rain', tool_call_id: 'call_1_1' },
    ])
    expect(out.tools).toEqual([weather])
    expect(out.stream).toBe(false)
    expect(out.stream_options).toBeUndefined()
  })

  it('keeps tool call ids Ollama already has', () => {
    const out = ollamaChatToOpenai(
      ollama({
        messages: [
          {
            role: 'assistant',
            content: '',
            tool_calls: [{ id: 'call_x', function: { name: 'f', arguments: {} } }],
          },
          { role: 'tool', tool_name: 'f', tool_call_id: 'call_x', content: 'ok' },
        ],
      }),
    )
    expect(out.messages[0]?.tool_calls?.[0]?.id).toBe('call_x')
    expect(out.messages[1]?.tool_call_id).toBe('call_x')
  })

  it('maps format to response_format', () => {
    expect(ollamaChatToOpenai(ollama({ messages: [], format: 'json' })).response_format).toEqual({
      type: 'json_object',
    })
    expect(ollamaChatToOpenai(ollama({ messages: [], format: personSchema })).response_format).toEqual({
      type: 'json_schema',
      json_schema: { name: 'response', schema: personSchema },
    })
    expect(ollamaChatToOpenai(ollama({ messages: [], format: '' })).response_format).toBeUndefined()
  })

  it('maps think and logprobs', () => {
    const off = ollamaChatToOpenai(ollama({ messages: [], think: false, logprobs: true, top_logprobs: 2 }))
    expect(off['chat_template_kwargs']).toEqual({ enable_thinking: false })
    expect(off.logprobs).toBe(true)
    expect(off.top_logprobs).toBe(2)
    expect(ollamaChatToOpenai(ollama({ messages: [], think: 'high' })).reasoning_effort).toBe('high')
    const thought = ollamaChatToOpenai(
      ollama({ messages: [{ role: 'assistant', content: 'a', thinking: 'b' }] }),
    )
    expect(thought.messages[0]).toEqual({ role: 'assistant', content: 'a', reasoning_content: 'b' })
  })
})

describe('completions and generate', () => {
  it('OpenAI completion -> raw Ollama generate', () => {
    const out = openaiCompletionToOllamaGenerate(
      parseOpenAICompletionRequest({
        model: 'qwen',
        prompt: ['Once upon'],
        max_tokens: 10,
        stop: ['\n'],
        seed: 1,
        logprobs: 2,
        suffix: 'The end.',
      }),
    )
    expect(out).toEqual({
      model: 'qwen',
      prompt: 'Once upon',
      raw: true,
      stream: false,
      suffix: 'The end.',
      options: { num_predict: 10, stop: ['\n'], seed: 1 },
      logprobs: true,
      top_logprobs: 2,
    })
  })

  it('refuses several prompts, token prompts and echo', () => {
    const run = (body: Record<string, unknown>) => () =>
      openaiCompletionToOllamaGenerate(parseOpenAICompletionRequest({ model: 'm', ...body }))
    expect(badRequest(run({ prompt: ['a', 'b'] }))).toBe(
      'prompt: an Ollama upstream takes one prompt per request, got 2',
    )
    expect(badRequest(run({ prompt: [1, 2, 3] }))).toBe(
      'prompt: an Ollama upstream takes text prompts, got token ids',
    )
    expect(badRequest(run({ prompt: 'a', echo: true }))).toBe(
      'echo: an Ollama upstream cannot echo the prompt, got true',
    )
  })

  it('a templated Ollama generate goes to the chat endpoint, a raw one to completions', () => {
    const templated = parseOllamaGenerateRequest(clientRequests('ollama-generate').requests[0])
    expect(ollamaGenerateTarget(templated)).toBe('chat')
    expect(ollamaGenerateToOpenaiChat(templated)).toEqual({
      model: 'velo-tiny',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Once upon a time' },
      ],
      stream: false,
      max_tokens: 8,
    })
    const raw = parseOllamaGenerateRequest({
      model: 'm',
      prompt: 'abc',
      raw: true,
      options: { num_predict: 4 },
    })
    expect(ollamaGenerateTarget(raw)).toBe('completion')
    expect(ollamaGenerateToOpenaiCompletion(raw)).toEqual({
      model: 'm',
      prompt: 'abc',
      stream: true,
      stream_options: { include_usage: true },
      max_tokens: 4,
    })
  })

  it('a generate request with images becomes a user message with image parts', () => {
    const out = ollamaGenerateToOpenaiChat(
      parseOllamaGenerateRequest({
        model: 'm',
        prompt: 'What?',
        images: [PNG],
        stream: false,
        format: 'json',
      }),
    )
    expect(out.messages).toEqual([
      {
        role: 'user',
        content: [
          { type: 'text', text: 'What?' },
          { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } },
        ],
      },
    ])
    expect(out.response_format).toEqual({ type: 'json_object' })
  })
})

describe('embeddings', () => {
  it('OpenAI -> Ollama embed', () => {
    const req = parseOpenAIEmbeddingRequest(clientRequests('openai-embedding').requests[0])
    expect(openaiEmbeddingToOllama(req)).toEqual({ model: 'velo-tiny', input: ['hello world', 'good night'] })
    const dims = parseOpenAIEmbeddingRequest({ model: 'm', input: 'x', dimensions: 64 })
    expect(openaiEmbeddingToOllama(dims)).toEqual({ model: 'm', input: 'x', dimensions: 64 })
    const tokens = parseOpenAIEmbeddingRequest({ model: 'm', input: [1, 2] })
    expect(badRequest(() => openaiEmbeddingToOllama(tokens))).toBe(
      'input: an Ollama upstream embeds text, got token ids',
    )
  })

  it('Ollama embed and legacy embeddings -> OpenAI, asking for floats', () => {
    const embed = parseOllamaEmbedRequest(clientRequests('ollama-embed').requests[0])
    expect(ollamaEmbedToOpenai(embed)).toEqual({
      model: 'velo-tiny',
      input: ['hello world', 'good night'],
      encoding_format: 'float',
    })
    const legacy = parseOllamaEmbeddingsRequest(clientRequests('ollama-embeddings').requests[0])
    expect(ollamaEmbedToOpenai(legacy)).toEqual({
      model: 'velo-tiny',
      input: 'hello world',
      encoding_format: 'float',
    })
  })
})

describe('round trips keep what both formats express', () => {
  it('OpenAI -> Ollama -> OpenAI', () => {
    const original = openai({
      messages: [
        { role: 'system', content: 'You are a weather bot.' },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'Weather here?' },
            { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } },
          ],
        },
        {
          role: 'assistant',
          content: null,
          tool_calls: [
            {
              id: 'call_abc',
              type: 'function',
              function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
            },
          ],
        },
        { role: 'tool', tool_call_id: 'call_abc', content: '{"temp":21}' },
      ],
      tools: [weather],
      response_format: { type: 'json_schema', json_schema: { name: 'response', schema: personSchema } },
      temperature: 0.5,
      top_p: 0.9,
      top_k: 40,
      seed: 11,
      stop: ['END'],
      max_tokens: 32,
      stream: true,
      stream_options: { include_usage: true },
      logprobs: true,
      top_logprobs: 2,
    })
    const back = ollamaChatToOpenai(openaiChatToOllama(original))
    expect(back).toEqual(original)
  })

  it('Ollama -> OpenAI -> Ollama', () => {
    const original = ollama({
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Look', images: [PNG] },
        {
          role: 'assistant',
          content: '',
          tool_calls: [
            { id: 'call_1', function: { index: 0, name: 'get_weather', arguments: { city: 'Paris' } } },
          ],
        },
        { role: 'tool', tool_name: 'get_weather', tool_call_id: 'call_1', content: 'sunny' },
        { role: 'assistant', content: 'It is sunny.', thinking: 'easy' },
      ],
      tools: [weather],
      format: personSchema,
      options: {
        num_predict: 16,
        temperature: 0.3,
        top_k: 10,
        min_p: 0.2,
        seed: 5,
        stop: ['x'],
        repeat_penalty: 1.1,
      },
      stream: false,
      logprobs: true,
      top_logprobs: 1,
    })
    const back = openaiChatToOllama(ollamaChatToOpenai(original))
    expect(back).toEqual(original)
  })

  it('the official clients’ requests survive a round trip', () => {
    for (const name of ['openai-chat', 'openai-chat-stream', 'openai-chat-tools']) {
      const original = parseOpenAIChatRequest(clientRequests(name).requests[0])
      const back = ollamaChatToOpenai(openaiChatToOllama(original))
      expect(back.messages.length).toBe(original.messages.length)
      expect(back.max_tokens).toBe(original.max_completion_tokens ?? original.max_tokens)
      expect(back.stream).toBe(original.stream === true)
    }
  })
})
