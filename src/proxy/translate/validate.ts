import type { z } from 'zod'
import { VeloError } from '../../core/errors.js'
import {
  ollamaChatRequestSchema,
  ollamaEmbeddingsRequestSchema,
  ollamaEmbedRequestSchema,
  ollamaGenerateRequestSchema,
  openaiChatRequestSchema,
  openaiCompletionRequestSchema,
  openaiEmbeddingRequestSchema,
} from './schemas.js'
import type {
  OllamaChatRequest,
  OllamaEmbeddingsRequest,
  OllamaEmbedRequest,
  OllamaGenerateRequest,
  OpenAIChatRequest,
  OpenAICompletionRequest,
  OpenAIEmbeddingRequest,
} from './types.js'

/** A field path as clients write it: `messages[0].tool_calls[1].function.name`. */
export function fieldPath(path: readonly PropertyKey[]): string {
  let label = ''
  for (const key of path) {
    if (typeof key === 'number') label += `[${key}]`
    else label += label ? `.${String(key)}` : String(key)
  }
  return label || '(body)'
}

/** The value a client sent, briefly: `"bot"`, `5`, `an array`, `nothing`. */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing'
  if (value === null) return 'null'
  if (Array.isArray(value)) return value.length === 0 ? 'an empty array' : `an array of ${value.length}`
  if (typeof value === 'object') return 'an object'
  const text = JSON.stringify(value)
  return text.length > 40 ? `${text.slice(0, 37)}..."` : text
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input
  for (const key of path) {
    if (value === null || typeof value !== 'object') return undefined
    value = (value as Record<PropertyKey, unknown>)[key]
  }
  return value
}

const TYPE_NAMES: Record<string, string> = {
  int: 'an integer',
  number: 'a number',
  string: 'a string',
  boolean: 'true or false',
  object: 'an object',
  array: 'an array',
}

function expectation(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'invalid_value':
      return issue.values.length === 1
        ? `expected ${JSON.stringify(issue.values[0])}`
        : `expected one of ${issue.values.map(String).join('|')}`
    case 'invalid_type':
      // Our schemas set messages of the form "expected ..."; zod's own default reads differently.
      return issue.message.startsWith('expected')
        ? issue.message
        : `expected ${TYPE_NAMES[issue.expected] ?? issue.expected}`
    default:
      return issue.message
  }
}

/** `messages[0].role: expected one of system|user|assistant|tool, got "bot"` for up to three issues. */
export function formatRequestIssues(issues: readonly z.core.$ZodIssue[], input: unknown): string {
  const shown = issues.slice(0, 3).map((issue) => {
    return `${fieldPath(issue.path)}: ${expectation(issue)}, got ${describeValue(valueAt(input, issue.path))}`
  })
  if (issues.length > 3) shown.push(`and ${issues.length - 3} more`)
  return shown.join('; ')
}

function parseWith<T>(schema: z.ZodType<T>, input: unknown, what: string): T {
  const result = schema.safeParse(input)
  if (result.success) return result.data
  throw new VeloError('VELO_BAD_REQUEST', formatRequestIssues(result.error.issues, input), {
    suggestion: `fix the request body (${what})`,
    status: 400,
  })
}

export function parseOpenAIChatRequest(body: unknown): OpenAIChatRequest {
  return parseWith(openaiChatRequestSchema, body, 'an OpenAI chat completion request')
}

export function parseOpenAICompletionRequest(body: unknown): OpenAICompletionRequest {
  return parseWith(openaiCompletionRequestSchema, body, 'an OpenAI completion request')
}

export function parseOpenAIEmbeddingRequest(body: unknown): OpenAIEmbeddingRequest {
  return parseWith(openaiEmbeddingRequestSchema, body, 'an OpenAI embedding request')
}

export function parseOllamaChatRequest(body: unknown): OllamaChatRequest {
  return parseWith(ollamaChatRequestSchema, body, 'an Ollama chat request')
}

export function parseOllamaGenerateRequest(body: unknown): OllamaGenerateRequest {
  return parseWith(ollamaGenerateRequestSchema, body, 'an Ollama generate request')
}

export function parseOllamaEmbedRequest(body: unknown): OllamaEmbedRequest {
  return parseWith(ollamaEmbedRequestSchema, body, 'an Ollama embed request')
}

/** The legacy `/api/embeddings` body (`prompt`, one vector back). */
export function parseOllamaEmbeddingsRequest(body: unknown): OllamaEmbeddingsRequest {
  return parseWith(ollamaEmbeddingsRequestSchema, body, 'an Ollama embeddings request')
}
