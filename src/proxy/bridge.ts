/**
 * What crosses between the two API families: for each client route and upstream API, the
 * upstream route, the validated request turned into the upstream's body, and how its answer
 * (plain or streamed) turns back into the client's format. The translation itself lives in
 * ./translate; this file only picks the right functions.
 */
import {
  createOllamaToOpenAIStream,
  createOpenAIToOllamaStream,
  type OllamaChatRequest,
  type OllamaChatResponse,
  type OllamaEmbeddingsRequest,
  type OllamaEmbedRequest,
  type OllamaEmbedResponse,
  type OllamaGenerateRequest,
  type OllamaGenerateResponse,
  type OpenAIChatCompletion,
  type OpenAIChatRequest,
  type OpenAICompletionRequest,
  type OpenAIEmbeddingList,
  type OpenAIEmbeddingRequest,
  type OpenAITextCompletion,
  ollamaChatResponseToOpenai,
  ollamaChatToOpenai,
  ollamaEmbedResponseToOpenai,
  ollamaEmbedToOpenai,
  ollamaGenerateResponseToOpenaiCompletion,
  ollamaGenerateTarget,
  ollamaGenerateToOpenaiChat,
  ollamaGenerateToOpenaiCompletion,
  openaiChatResponseToOllama,
  openaiChatToOllama,
  openaiCompletionResponseToOllamaGenerate,
  openaiCompletionToOllamaGenerate,
  openaiEmbeddingResponseToOllama,
  openaiEmbeddingResponseToOllamaLegacy,
  openaiEmbeddingToOllama,
  parseOllamaChatRequest,
  parseOllamaEmbeddingsRequest,
  parseOllamaEmbedRequest,
  parseOllamaGenerateRequest,
  parseOpenAIChatRequest,
  parseOpenAICompletionRequest,
  parseOpenAIEmbeddingRequest,
  type StreamTranslator,
  type TranslateContext,
} from './translate/index.js'

export type ClientApi = 'openai' | 'ollama'
export type UpstreamApi = 'openai' | 'ollama'

/** The inference routes velo serves, by the path clients call. */
export type InferenceRoute =
  | '/v1/chat/completions'
  | '/v1/completions'
  | '/v1/embeddings'
  | '/api/chat'
  | '/api/generate'
  | '/api/embed'
  | '/api/embeddings'

export const INFERENCE_ROUTES: Record<InferenceRoute, { api: ClientApi; generates: boolean }> = {
  '/v1/chat/completions': { api: 'openai', generates: true },
  '/v1/completions': { api: 'openai', generates: true },
  '/v1/embeddings': { api: 'openai', generates: false },
  '/api/chat': { api: 'ollama', generates: true },
  '/api/generate': { api: 'ollama', generates: true },
  '/api/embed': { api: 'ollama', generates: false },
  '/api/embeddings': { api: 'ollama', generates: false },
}

/** A validated client request: the zod output, its model and whether the client wants a stream. */
export interface ParsedRequest {
  route: InferenceRoute
  value:
    | OpenAIChatRequest
    | OpenAICompletionRequest
    | OpenAIEmbeddingRequest
    | OllamaChatRequest
    | OllamaGenerateRequest
    | OllamaEmbedRequest
    | OllamaEmbeddingsRequest
  model: string
  stream: boolean
}

/** Validate the (already parsed) body for its route; throws a 400 naming the field. */
export function parseRequest(route: InferenceRoute, body: unknown): ParsedRequest {
  switch (route) {
    case '/v1/chat/completions': {
      const value = parseOpenAIChatRequest(body)
      return { route, value, model: value.model, stream: value.stream === true }
    }
    case '/v1/completions': {
      const value = parseOpenAICompletionRequest(body)
      return { route, value, model: value.model, stream: value.stream === true }
    }
    case '/v1/embeddings': {
      const value = parseOpenAIEmbeddingRequest(body)
      return { route, value, model: value.model, stream: false }
    }
    case '/api/chat': {
      const value = parseOllamaChatRequest(body)
      return { route, value, model: value.model, stream: value.stream !== false }
    }
    case '/api/generate': {
      const value = parseOllamaGenerateRequest(body)
      return { route, value, model: value.model, stream: value.stream !== false }
    }
    case '/api/embed': {
      const value = parseOllamaEmbedRequest(body)
      return { route, value, model: value.model, stream: false }
    }
    case '/api/embeddings': {
      const value = parseOllamaEmbeddingsRequest(body)
      return { route, value, model: value.model, stream: false }
    }
  }
}

/** How a request crosses to the other API and its answer comes back. */
export interface CrossPlan {
  upstreamRoute: string
  /** The upstream request body (serialized once by the caller). */
  body: Record<string, unknown>
  /** Whether the upstream answer is a stream (SSE from OpenAI servers, NDJSON from Ollama). */
  stream: boolean
  framing: 'sse' | 'ndjson'
  /** A plain upstream answer in the client's format. */
  respond(upstream: unknown): unknown
  /** A per-response stream translator. */
  streamTranslator(): StreamTranslator
  /** Content type of what the client receives. */
  contentType: string
}

const SSE = 'text/event-stream; charset=utf-8'
const NDJSON = 'application/x-ndjson'
const JSON_TYPE = 'application/json; charset=utf-8'

function noStream(): StreamTranslator {
  return { push: () => '', end: () => '' }
}

/**
 * The plan for a request whose client API differs from the upstream's. `upstreamModel` is the
 * name the upstream knows; `ctx.model` the name the client asked for (what answers show).
 */
export function crossPlan(parsed: ParsedRequest, upstreamModel: string, ctx: TranslateContext): CrossPlan {
  const options = { model: upstreamModel }
  switch (parsed.route) {
    case '/v1/chat/completions': {
      const body = openaiChatToOllama(parsed.value as OpenAIChatRequest, options)
      return {
        upstreamRoute: '/api/chat',
        body,
        stream: parsed.stream,
        framing: 'ndjson',
        respond: (upstream) => ollamaChatResponseToOpenai(upstream as OllamaChatResponse, ctx),
        streamTranslator: () => createOllamaToOpenAIStream('chat', ctx),
        contentType: parsed.stream ? SSE : JSON_TYPE,
      }
    }
    case '/v1/completions': {
      const body = openaiCompletionToOllamaGenerate(parsed.value as OpenAICompletionRequest, options)
      return {
        upstreamRoute: '/api/generate',
        body,
        stream: parsed.stream,
        framing: 'ndjson',
        respond: (upstream) =>
          ollamaGenerateResponseToOpenaiCompletion(upstream as OllamaGenerateResponse, ctx),
        streamTranslator: () => createOllamaToOpenAIStream('completion', ctx),
        contentType: parsed.stream ? SSE : JSON_TYPE,
      }
    }
    case '/v1/embeddings': {
      const request = parsed.value as OpenAIEmbeddingRequest
      const body = openaiEmbeddingToOllama(request, options)
      return {
        upstreamRoute: '/api/embed',
        body,
        stream: false,
        framing: 'ndjson',
        respond: (upstream) =>
          ollamaEmbedResponseToOpenai(upstream as OllamaEmbedResponse, {
            model: ctx.model,
            encodingFormat: request.encoding_format,
          }),
        streamTranslator: noStream,
        contentType: JSON_TYPE,
      }
    }
    case '/api/chat': {
      const body = ollamaChatToOpenai(parsed.value as OllamaChatRequest, options)
      return {
        upstreamRoute: '/v1/chat/completions',
        body,
        stream: parsed.stream,
        framing: 'sse',
        respond: (upstream) => openaiChatResponseToOllama(upstream as OpenAIChatCompletion, ctx),
        streamTranslator: () => createOpenAIToOllamaStream('chat', ctx),
        contentType: parsed.stream ? NDJSON : JSON_TYPE,
      }
    }
    case '/api/generate': {
      const request = parsed.value as OllamaGenerateRequest
      const chat = ollamaGenerateTarget(request) === 'chat'
      const body = chat
        ? ollamaGenerateToOpenaiChat(request, options)
        : ollamaGenerateToOpenaiCompletion(request, options)
      return {
        upstreamRoute: chat ? '/v1/chat/completions' : '/v1/completions',
        body,
        stream: parsed.stream,
        framing: 'sse',
        respond: (upstream) =>
          openaiCompletionResponseToOllamaGenerate(
            upstream as OpenAITextCompletion | OpenAIChatCompletion,
            ctx,
          ),
        streamTranslator: () => createOpenAIToOllamaStream('generate', ctx),
        contentType: parsed.stream ? NDJSON : JSON_TYPE,
      }
    }
    case '/api/embed': {
      const body = ollamaEmbedToOpenai(parsed.value as OllamaEmbedRequest, options)
      return {
        upstreamRoute: '/v1/embeddings',
        body,
        stream: false,
        framing: 'sse',
        respond: (upstream) => openaiEmbeddingResponseToOllama(upstream as OpenAIEmbeddingList, ctx),
        streamTranslator: noStream,
        contentType: JSON_TYPE,
      }
    }
    case '/api/embeddings': {
      const body = ollamaEmbedToOpenai(parsed.value as OllamaEmbeddingsRequest, options)
      return {
        upstreamRoute: '/v1/embeddings',
        body,
        stream: false,
        framing: 'sse',
        respond: (upstream) => openaiEmbeddingResponseToOllamaLegacy(upstream as OpenAIEmbeddingList),
        streamTranslator: noStream,
        contentType: JSON_TYPE,
      }
    }
  }
}
