/**
 * The payloads velo translates. Requests are inferred from the zod schemas (what velo accepts);
 * responses and stream chunks are what the engines send, typed as far as velo reads them: each
 * keeps an index signature because engines add fields (llama-server's `timings`, Ollama's
 * `context`) that pass through untouched when the response goes to a client of the same kind.
 */
import type { z } from 'zod'
import type {
  ollamaChatRequestSchema,
  ollamaEmbeddingsRequestSchema,
  ollamaEmbedRequestSchema,
  ollamaGenerateRequestSchema,
  ollamaMessageSchema,
  ollamaOptionsSchema,
  ollamaToolCallSchema,
  openaiChatRequestSchema,
  openaiCompletionRequestSchema,
  openaiContentPartSchema,
  openaiEmbeddingRequestSchema,
  openaiMessageSchema,
  openaiToolCallSchema,
  openaiToolSchema,
} from './schemas.js'

// ---------------------------------------------------------------------------------------------
// Requests

export type OpenAIChatRequest = z.infer<typeof openaiChatRequestSchema>
export type OpenAIMessage = z.infer<typeof openaiMessageSchema>
export type OpenAIContentPart = z.infer<typeof openaiContentPartSchema>
export type OpenAIToolCall = z.infer<typeof openaiToolCallSchema>
export type OpenAITool = z.infer<typeof openaiToolSchema>
export type OpenAICompletionRequest = z.infer<typeof openaiCompletionRequestSchema>
export type OpenAIEmbeddingRequest = z.infer<typeof openaiEmbeddingRequestSchema>

export type OllamaChatRequest = z.infer<typeof ollamaChatRequestSchema>
export type OllamaMessage = z.infer<typeof ollamaMessageSchema>
export type OllamaToolCall = z.infer<typeof ollamaToolCallSchema>
export type OllamaOptions = NonNullable<z.infer<typeof ollamaOptionsSchema>>
export type OllamaGenerateRequest = z.infer<typeof ollamaGenerateRequestSchema>
export type OllamaEmbedRequest = z.infer<typeof ollamaEmbedRequestSchema>
export type OllamaEmbeddingsRequest = z.infer<typeof ollamaEmbeddingsRequestSchema>

// ---------------------------------------------------------------------------------------------
// OpenAI responses

export type OpenAIFinishReason = 'stop' | 'length' | 'tool_calls' | 'content_filter' | 'function_call'

export interface OpenAIUsage {
  prompt_tokens: number
  completion_tokens: number
  total_tokens: number
  [extra: string]: unknown
}

/** llama-server's per-response timings (milliseconds), on the response or the last stream chunk. */
export interface LlamaServerTimings {
  cache_n?: number
  prompt_n?: number
  prompt_ms?: number
  predicted_n?: number
  predicted_ms?: number
  [extra: string]: unknown
}

export interface TokenLogprob {
  token: string
  logprob: number
  bytes?: number[] | null
  top_logprobs?: TokenLogprob[]
  [extra: string]: unknown
}

export interface OpenAIResponseToolCall {
  id: string
  type: 'function'
  function: { name: string; arguments: string }
}

export interface OpenAIChatCompletion {
  id: string
  object: 'chat.completion'
  created: number
  model: string
  choices: Array<{
    index: number
    message: {
      role: 'assistant'
      content: string | null
      tool_calls?: OpenAIResponseToolCall[]
      reasoning_content?: string
      [extra: string]: unknown
    }
    finish_reason: OpenAIFinishReason | null
    logprobs?: { content: TokenLogprob[] | null } | null
  }>
  usage?: OpenAIUsage
  timings?: LlamaServerTimings
  [extra: string]: unknown
}

export interface OpenAIToolCallDelta {
  index: number
  id?: string
  type?: 'function'
  function?: { name?: string; arguments?: string }
}

export interface OpenAIChatChunk {
  id: string
  object: 'chat.completion.chunk'
  created: number
  model: string
  choices: Array<{
    index: number
    delta: {
      role?: 'assistant'
      content?: string | null
      reasoning_content?: string | null
      tool_calls?: OpenAIToolCallDelta[]
      [extra: string]: unknown
    }
    finish_reason: OpenAIFinishReason | null
    logprobs?: { content: TokenLogprob[] | null } | null
  }>
  usage?: OpenAIUsage | null
  timings?: LlamaServerTimings
  [extra: string]: unknown
}

export interface OpenAITextCompletion {
  id: string
  object: 'text_completion'
  created: number
  model: string
  choices: Array<{
    index: number
    text: string
    finish_reason: OpenAIFinishReason | null
    logprobs: unknown
  }>
  usage?: OpenAIUsage | null
  timings?: LlamaServerTimings
  [extra: string]: unknown
}

/** Streamed text completions use the same object as the full response, one piece per chunk. */
export type OpenAITextCompletionChunk = OpenAITextCompletion

export interface OpenAIEmbeddingList {
  object: 'list'
  model: string
  data: Array<{ object: 'embedding'; index: number; embedding: number[] | string }>
  usage: { prompt_tokens: number; total_tokens: number }
  [extra: string]: unknown
}

/** An OpenAI error body (also what llama-server sends mid-stream as `data: {"error": ...}`). */
export interface OpenAIErrorBody {
  error: { message: string; type: string; code?: string | number | null; param?: string | null }
}

// ---------------------------------------------------------------------------------------------
// Ollama responses

export type OllamaDoneReason = 'stop' | 'length' | 'load' | 'unload' | (string & {})

/** The counts and durations (nanoseconds) on Ollama's final response or stream line. */
export interface OllamaMetrics {
  total_duration?: number
  load_duration?: number
  prompt_eval_count?: number
  prompt_eval_duration?: number
  eval_count?: number
  eval_duration?: number
}

export interface OllamaResponseToolCall {
  id?: string
  function: { index?: number; name: string; arguments: Record<string, unknown> }
}

export interface OllamaChatResponse extends OllamaMetrics {
  model: string
  created_at: string
  message: {
    role: 'assistant'
    content: string
    thinking?: string
    tool_calls?: OllamaResponseToolCall[]
    images?: string[] | null
  }
  done: boolean
  done_reason?: OllamaDoneReason
  logprobs?: TokenLogprob[]
  [extra: string]: unknown
}

/** A streamed line has the same shape; only the last has `done: true` and the metrics. */
export type OllamaChatChunk = OllamaChatResponse

export interface OllamaGenerateResponse extends OllamaMetrics {
  model: string
  created_at: string
  response: string
  thinking?: string
  done: boolean
  done_reason?: OllamaDoneReason
  context?: number[]
  logprobs?: TokenLogprob[]
  [extra: string]: unknown
}

export type OllamaGenerateChunk = OllamaGenerateResponse

export interface OllamaEmbedResponse {
  model: string
  embeddings: number[][]
  total_duration?: number
  load_duration?: number
  prompt_eval_count?: number
  [extra: string]: unknown
}

export interface OllamaEmbeddingsResponse {
  embedding: number[]
  [extra: string]: unknown
}

/** Ollama's error body, also sent as one NDJSON line when a stream fails midway. */
export interface OllamaErrorBody {
  error: string
}

// ---------------------------------------------------------------------------------------------
// Translation context

/** What a response translation needs to know about the request it answers. */
export interface TranslateContext {
  /** The model name to show the client (the name it asked for, not the upstream's). */
  model: string
  /** Response id for OpenAI bodies (`chatcmpl-...`, `cmpl-...`). */
  id: string
  /** Unix seconds, for OpenAI's `created`. */
  created: number
  /** `stream_options.include_usage` of the OpenAI request: send a usage chunk before [DONE]. */
  includeUsage: boolean
  /** performance.now() when the request arrived; durations fall back to wall time from here. */
  startedAt: number
  /** Clock for wall-time durations (performance.now by default); tests pass a fake one. */
  now?: () => number
}
