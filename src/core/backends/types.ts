/**
 * What bench and optimize need from an inference server: list its models and stream a chat while
 * recording when each piece of text arrived. One interface over Ollama's native API and any
 * OpenAI-compatible server (llama-server, vLLM, velo itself).
 */

/** What the server is. */
export type BackendKind = 'ollama' | 'llama-server' | 'openai' | 'velo'

/** Which wire protocol velo speaks to it. */
export type BackendApi = 'ollama' | 'openai'

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant'
  content: string
}

export interface ChatStreamRequest {
  model: string
  messages: ChatMessage[]
  /** Tokens to generate at most (`max_tokens` / Ollama `num_predict`). */
  maxTokens?: number | undefined
  /** Keep generating past end-of-sequence; only llama-server honours it (`ignore_eos`). */
  ignoreEos?: boolean | undefined
  temperature?: number | undefined
  seed?: number | undefined
  /**
   * Extra request options: Ollama `options` (num_ctx, num_thread, ...) or top-level fields of an
   * OpenAI-compatible body (top_k, cache_prompt, ...).
   */
  options?: Record<string, string | number | boolean> | undefined
}

/** Counts the server reported for one request. */
export interface StreamUsage {
  promptTokens: number | undefined
  completionTokens: number | undefined
}

/** The engine's own measurement of one request (llama-server `timings`, Ollama durations). */
export interface EngineTimings {
  promptTokens: number | undefined
  promptMs: number | undefined
  generatedTokens: number | undefined
  generationMs: number | undefined
  /** Prompt tokens served from the engine's prompt cache (llama-server `cache_n`). */
  cachedTokens: number | undefined
}

/** A piece of generated text and when it arrived (`performance.now()` milliseconds). */
export interface TokenEvent {
  type: 'token'
  text: string
  at: number
}

/** The last event of every successful stream. */
export interface EndEvent {
  type: 'end'
  at: number
  usage: StreamUsage
  timings: EngineTimings | undefined
  finishReason: string | undefined
}

export type StreamEvent = TokenEvent | EndEvent

export interface BackendModel {
  id: string
  /** Bytes of the weights (file size), when the server says. */
  sizeBytes: number | undefined
  digest: string | undefined
  parameterCount: number | undefined
}

export interface BackendClient {
  readonly kind: BackendKind
  readonly api: BackendApi
  /** The server's root URL, without a trailing `/v1`. */
  readonly baseUrl: string
  listModels(): Promise<BackendModel[]>
  /** The server's version string (Ollama version, llama-server build), when it tells. */
  version(): Promise<string | undefined>
  /**
   * Stream one chat. Yields a token event per piece of text, then exactly one end event.
   * Throws a VeloError when the server cannot be reached, answers with an error, or breaks off.
   */
  chatStream(request: ChatStreamRequest, signal?: AbortSignal): AsyncIterable<StreamEvent>
  /**
   * Exact prompt length of these messages as the server will see them (chat template applied,
   * special tokens added), without generating. Only servers with a tokenizer endpoint have it.
   */
  countPromptTokens?(model: string, messages: ChatMessage[]): Promise<number>
  /** Token ids of plain text (no special tokens added), where the server has a tokenizer endpoint. */
  tokenize?(text: string): Promise<number[]>
  close(): Promise<void>
}
