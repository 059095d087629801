/**
 * velo serve's API translation layer: validation of both client APIs, request and response
 * translation between OpenAI and Ollama (plain and streamed), and upstream body framing.
 * Pure functions; the server owns the sockets. See docs/serve.md, "API translation".
 */
export { createNDJSONSplitter, createSSEParser, type IncrementalParser } from './framing.js'
export { mayHoldNull, withoutNullFields } from './nulls.js'
export {
  ollamaChatToOpenai,
  ollamaEmbedToOpenai,
  ollamaGenerateTarget,
  ollamaGenerateToOpenaiChat,
  ollamaGenerateToOpenaiCompletion,
  openaiChatToOllama,
  openaiCompletionToOllamaGenerate,
  openaiEmbeddingToOllama,
  type TranslateRequestOptions,
} from './requests.js'
export {
  base64ToFloats,
  floatsToBase64,
  ollamaChatResponseToOpenai,
  ollamaEmbedResponseToOpenai,
  ollamaGenerateResponseToOpenaiCompletion,
  openaiChatResponseToOllama,
  openaiCompletionResponseToOllamaGenerate,
  openaiEmbeddingResponseToOllama,
  openaiEmbeddingResponseToOllamaLegacy,
} from './responses.js'
export {
  createOllamaToOpenAIStream,
  createOpenAIToOllamaStream,
  type StreamTranslator,
  streamErrorMessage,
} from './stream.js'
export type * from './types.js'
export {
  formatRequestIssues,
  parseOllamaChatRequest,
  parseOllamaEmbeddingsRequest,
  parseOllamaEmbedRequest,
  parseOllamaGenerateRequest,
  parseOpenAIChatRequest,
  parseOpenAICompletionRequest,
  parseOpenAIEmbeddingRequest,
} from './validate.js'
