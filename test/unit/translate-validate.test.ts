import { describe, expect, it } from 'vitest'
import { VeloError } from '../../src/core/errors.js'
import {
  parseOllamaChatRequest,
  parseOllamaEmbeddingsRequest,
  parseOllamaEmbedRequest,
  parseOllamaGenerateRequest,
  parseOpenAIChatRequest,
  parseOpenAICompletionRequest,
  parseOpenAIEmbeddingRequest,
} from '../../src/proxy/translate/index.js'
import { clientRequests, fixture } from '../fixtures/translate/load.js'

function rejection(parse: (body: unknown) => unknown, body: unknown): VeloError {
  try {
    parse(body)
  } catch (error) {
    if (error instanceof VeloError) return error
    throw error
  }
  throw new Error('expected the request to be rejected')
}

const user = { role: 'user', content: 'hi' }

describe('what the official clients send is accepted', () => {
  it.each([
    ['openai-chat', parseOpenAIChatRequest],
    ['openai-chat-stream', parseOpenAIChatRequest],
    ['openai-chat-tools', parseOpenAIChatRequest],
    ['openai-completion', parseOpenAICompletionRequest],
    ['openai-embedding', parseOpenAIEmbeddingRequest],
    ['ollama-chat', parseOllamaChatRequest],
    ['ollama-chat-stream-tools', parseOllamaChatRequest],
    ['ollama-generate', parseOllamaGenerateRequest],
    ['ollama-embed', parseOllamaEmbedRequest],
    ['ollama-embeddings', parseOllamaEmbeddingsRequest],
  ] as const)('%s', (name, parse) => {
    for (const body of clientRequests(name).requests) expect(parse(body)).toEqual(body)
  })

  it('accepts every request sent to the engines while capturing fixtures', () => {
    const chat = [
      'chat',
      'chat-stream',
      'chat-tool-result',
      'chat-json-object',
      'chat-json-schema',
      'chat-logprobs',
    ]
    for (const name of chat) parseOpenAIChatRequest(fixture(`llama-server/${name}`).request)
    parseOpenAICompletionRequest(fixture('llama-server/completion-stream').request)
    parseOpenAIEmbeddingRequest(fixture('llama-server/embedding-base64').request)
    for (const name of [
      'chat',
      'chat-tool-result',
      'chat-format-json',
      'chat-format-schema',
      'chat-logprobs',
    ]) {
      parseOllamaChatRequest(fixture(`ollama/${name}`).request)
    }
    parseOllamaGenerateRequest(fixture('ollama/generate-raw').request)
    parseOllamaEmbedRequest(fixture('ollama/embed-single').request)
    parseOllamaEmbeddingsRequest(fixture('ollama/embeddings-legacy').request)
  })

  it('keeps fields it does not know, for an upstream of the same kind', () => {
    const body = {
      model: 'm',
      messages: [{ ...user, x_note: 1 }],
      id_slot: 1,
      cache_prompt: true,
      n_probs: 3,
      timings_per_token: true,
      temperature: null,
    }
    expect(parseOpenAIChatRequest(body)).toEqual(body)
    const ollama = { model: 'm', messages: [], options: { num_ctx: 4096, num_gpu: 99, use_mmap: false } }
    expect(parseOllamaChatRequest(ollama)).toEqual(ollama)
  })

  it('accepts an empty Ollama message list (load or unload the model)', () => {
    expect(parseOllamaChatRequest({ model: 'm', messages: [], keep_alive: 0 }).messages).toEqual([])
  })
})

describe('bad requests name the field, what was expected and what came', () => {
  it.each([
    [
      'an unknown OpenAI role',
      parseOpenAIChatRequest,
      { model: 'm', messages: [{ role: 'bot', content: 'x' }] },
      'messages[0].role: expected one of system|developer|user|assistant|tool|function, got "bot"',
    ],
    [
      'an unknown Ollama role',
      parseOllamaChatRequest,
      { model: 'm', messages: [user, { role: 'bot', content: 'x' }] },
      'messages[1].role: expected one of system|user|assistant|tool, got "bot"',
    ],
    ['no model', parseOpenAIChatRequest, { messages: [user] }, 'model: expected a string, got nothing'],
    [
      'messages as a string',
      parseOpenAIChatRequest,
      { model: 'm', messages: 'hi' },
      'messages: expected an array of messages, got "hi"',
    ],
    [
      'no messages',
      parseOpenAIChatRequest,
      { model: 'm', messages: [] },
      'messages: expected at least one message, got an empty array',
    ],
    [
      'a string temperature',
      parseOpenAIChatRequest,
      { model: 'm', messages: [user], temperature: 'hot' },
      'temperature: expected a number, got "hot"',
    ],
    [
      'numeric content',
      parseOpenAIChatRequest,
      { model: 'm', messages: [{ role: 'user', content: 5 }] },
      'messages[0].content: expected a string or an array of content parts, got 5',
    ],
    [
      'a text part without text',
      parseOpenAIChatRequest,
      { model: 'm', messages: [{ role: 'user', content: [{ type: 'text' }] }] },
      'messages[0].content[0].text: expected a string (the part is type "text"), got nothing',
    ],
    [
      'an assistant message with nothing',
      parseOpenAIChatRequest,
      { model: 'm', messages: [user, { role: 'assistant' }] },
      'messages[1].content: expected content or tool_calls in an assistant message, got nothing',
    ],
    [
      'a tool without a name',
      parseOpenAIChatRequest,
      { model: 'm', messages: [user], tools: [{ type: 'function', function: { name: 3 } }] },
      'tools[0].function.name: expected a string, got 3',
    ],
    [
      'an unknown tool_choice',
      parseOpenAIChatRequest,
      { model: 'm', messages: [user], tool_choice: 'always' },
      'tool_choice: expected "none", "auto", "required" or {"type": "function", "function": {"name": "..."}}, got "always"',
    ],
    [
      'an unknown response_format',
      parseOpenAIChatRequest,
      { model: 'm', messages: [user], response_format: { type: 'xml' } },
      'response_format.type: expected one of text|json_object|json_schema, got "xml"',
    ],
    [
      'json_schema without a schema',
      parseOpenAIChatRequest,
      { model: 'm', messages: [user], response_format: { type: 'json_schema' } },
      'response_format.json_schema: expected {"name": "...", "schema": {...}} (the type is "json_schema"), got nothing',
    ],
    [
      'a negative max_tokens',
      parseOpenAIChatRequest,
      { model: 'm', messages: [user], max_tokens: -1 },
      'max_tokens: expected an integer >= 0, got -1',
    ],
    [
      'a body that is not an object',
      parseOpenAIChatRequest,
      'hello',
      '(body): expected a JSON object, got "hello"',
    ],
    [
      'an Ollama format that is neither json nor a schema',
      parseOllamaChatRequest,
      { model: 'm', messages: [], format: 'xml' },
      'format: expected "json" or a JSON schema object, got "xml"',
    ],
    [
      'a string num_ctx',
      parseOllamaChatRequest,
      { model: 'm', messages: [], options: { num_ctx: 'big' } },
      'options.num_ctx: expected an integer, got "big"',
    ],
    [
      'Ollama tool call arguments as a string',
      parseOllamaChatRequest,
      {
        model: 'm',
        messages: [
          { role: 'assistant', content: '', tool_calls: [{ function: { name: 'f', arguments: '{}' } }] },
        ],
      },
      'messages[0].tool_calls[0].function.arguments: expected a JSON object, got "{}"',
    ],
    [
      'a tool call index that is not an integer',
      parseOllamaChatRequest,
      {
        model: 'm',
        messages: [
          { role: 'assistant', tool_calls: [{ function: { index: 'first', name: 'f', arguments: {} } }] },
        ],
      },
      'messages[0].tool_calls[0].function.index: expected an integer, got "first"',
    ],
    [
      'an unknown encoding_format',
      parseOpenAIEmbeddingRequest,
      { model: 'm', input: 'x', encoding_format: 'hex' },
      'encoding_format: expected one of float|base64, got "hex"',
    ],
    [
      'an embed request without input',
      parseOllamaEmbedRequest,
      { model: 'm' },
      'input: expected a string or an array of strings, got nothing',
    ],
    [
      'a completion prompt of objects',
      parseOpenAICompletionRequest,
      { model: 'm', prompt: [{}] },
      'prompt: expected a string, an array of strings, or token arrays, got an array of 1',
    ],
  ] as const)('%s', (_label, parse, body, message) => {
    const error = rejection(parse, body)
    expect(error.code).toBe('VELO_BAD_REQUEST')
    expect(error.status).toBe(400)
    expect(error.message).toBe(message)
  })

  it('reports at most three issues, then how many more', () => {
    const error = rejection(parseOpenAIChatRequest, {
      model: 1,
      messages: [],
      temperature: 'a',
      top_p: 'b',
      seed: 'c',
    })
    expect(error.message.split('; ')).toHaveLength(4)
    expect(error.message).toMatch(/^model: expected a string, got 1; /)
    expect(error.message).toMatch(/; and 2 more$/)
  })
})
