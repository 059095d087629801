/**
 * Request translation between the OpenAI and Ollama APIs. Each function builds the upstream body
 * from an already validated request; it copies only what it maps (strings and nested schemas are
 * shared, not cloned). What the target cannot express is dropped quietly when it only tunes
 * (logit_bias, num_ctx on llama-server) and refused with a 400 naming the field when the answer
 * would be wrong without it (n > 1, several prompts, remote image URLs).
 */
import {
  badRequest,
  dataUrlPayload,
  imageMediaType,
  isRecord,
  requestToolArguments,
  stopList,
} from './common.js'
import type {
  OllamaChatRequest,
  OllamaEmbeddingsRequest,
  OllamaEmbedRequest,
  OllamaGenerateRequest,
  OllamaMessage,
  OllamaOptions,
  OllamaToolCall,
  OpenAIChatRequest,
  OpenAICompletionRequest,
  OpenAIContentPart,
  OpenAIEmbeddingRequest,
  OpenAIMessage,
  OpenAITool,
  OpenAIToolCall,
} from './types.js'

export interface TranslateRequestOptions {
  /** The upstream's name for the model (after alias resolution); the request's model if absent. */
  model?: string
}

type Sampling = Pick<
  OpenAIChatRequest,
  | 'temperature'
  | 'top_p'
  | 'seed'
  | 'stop'
  | 'frequency_penalty'
  | 'presence_penalty'
  | 'top_k'
  | 'min_p'
  | 'typical_p'
  | 'repeat_penalty'
  | 'repeat_last_n'
  | 'mirostat'
  | 'mirostat_tau'
  | 'mirostat_eta'
  | 'n_keep'
>

// ---------------------------------------------------------------------------------------------
// OpenAI -> Ollama

/** OpenAI sampling fields (and llama-server's extras) as Ollama `options`. */
function ollamaOptions(req: Sampling, maxTokens: number | null | undefined): OllamaOptions | undefined {
  const options: OllamaOptions = {}
  let any = false
  const set = (key: keyof OllamaOptions & string, value: unknown): void => {
    if (value === null || value === undefined) return
    options[key] = value
    any = true
  }
  set('num_predict', maxTokens)
  set('temperature', req.temperature)
  set('top_p', req.top_p)
  set('top_k', req.top_k)
  set('min_p', req.min_p)
  set('typical_p', req.typical_p)
  set('seed', req.seed)
  set('stop', stopList(req.stop))
  set('frequency_penalty', req.frequency_penalty)
  set('presence_penalty', req.presence_penalty)
  set('repeat_penalty', req.repeat_penalty)
  set('repeat_last_n', req.repeat_last_n)
  set('mirostat', req.mirostat)
  set('mirostat_tau', req.mirostat_tau)
  set('mirostat_eta', req.mirostat_eta)
  set('num_keep', req.n_keep)
  return any ? options : undefined
}

function refuseMany(n: number | null | undefined): void {
  if (n !== null && n !== undefined && n > 1) {
    throw badRequest('n', `an Ollama upstream returns one choice per request, got ${n}`)
  }
}

/** Text of OpenAI content (a string or parts) and the images among the parts, as Ollama wants them. */
function splitContent(
  content: string | OpenAIContentPart[] | null | undefined,
  field: string,
): { text: string; images: string[] | undefined } {
  if (content === null || content === undefined) return { text: '', images: undefined }
  if (typeof content === 'string') return { text: content, images: undefined }
  let text = ''
  let images: string[] | undefined
  for (let i = 0; i < content.length; i++) {
    const part = content[i] as OpenAIContentPart
    if (part.type === 'text') {
      text = text ? `${text}\n${part.text ?? ''}` : (part.text ?? '')
    } else if (part.type === 'image_url') {
      const url = typeof part.image_url === 'string' ? part.image_url : (part.image_url?.url ?? '')
      const payload = dataUrlPayload(url)
      if (payload === undefined) {
        throw badRequest(
          `${field}[${i}].image_url`,
          'an Ollama upstream takes images as base64 data URLs (data:image/png;base64,...), got a remote URL',
        )
      }
      images ??= []
      images.push(payload)
    } else {
      throw badRequest(
        `${field}[${i}].type`,
        `an Ollama upstream takes text and image_url parts, got "${part.type}"`,
      )
    }
  }
  return { text, images }
}

function ollamaToolCalls(calls: OpenAIToolCall[], field: string): OllamaToolCall[] {
  return calls.map((call, index) => {
    const converted: OllamaToolCall = {
      function: {
        index,
        name: call.function.name,
        arguments: requestToolArguments(call.function.arguments, `${field}[${index}].function.arguments`),
      },
    }
    if (call.id !== undefined) converted.id = call.id
    return converted
  })
}

function ollamaMessages(messages: OpenAIMessage[]): OllamaMessage[] {
  // Tool results name their call by id in OpenAI and by function name in Ollama.
  const toolNames = new Map<string, string>()
  const out: OllamaMessage[] = new Array(messages.length)
  for (let i = 0; i < messages.length; i++) {
    const message = messages[i] as OpenAIMessage
    const field = `messages[${i}]`
    const { text, images } = splitContent(message.content, `${field}.content`)
    const role = message.role === 'developer' ? 'system' : message.role === 'function' ? 'tool' : message.role
    const converted: OllamaMessage = { role, content: text }
    if (images) converted.images = images
    if (message.role === 'assistant') {
      if (message.tool_calls?.length) {
        converted.tool_calls = ollamaToolCalls(message.tool_calls, `${field}.tool_calls`)
        for (const call of message.tool_calls) if (call.id) toolNames.set(call.id, call.function.name)
      }
      if (message.reasoning_content) converted.thinking = message.reasoning_content
    } else if (role === 'tool') {
      const id = message.tool_call_id ?? undefined
      const name = message.name ?? (id !== undefined ? toolNames.get(id) : undefined)
      if (name !== undefined) converted.tool_name = name
      if (id !== undefined) converted.tool_call_id = id
    }
    out[i] = converted
  }
  return out
}

/** Ollama's `format` from OpenAI's `response_format`. */
function ollamaFormat(
  format: OpenAIChatRequest['response_format'],
): 'json' | Record<string, unknown> | undefined {
  if (!format || format.type === 'text') return undefined
  if (format.type === 'json_schema') return format.json_schema?.schema ?? 'json'
  return format.schema ?? 'json'
}

/** Ollama has no tool_choice: "none" sends no tools, a named function sends only that one. */
function ollamaTools(req: OpenAIChatRequest): OpenAITool[] | undefined {
  const tools = req.tools
  if (!tools?.length) return undefined
  const choice = req.tool_choice
  if (choice === 'none') return undefined
  if (isRecord(choice)) {
    const only = tools.filter((tool) => tool.function.name === choice.function.name)
    if (only.length === 0) {
      throw badRequest(
        'tool_choice.function.name',
        `expected one of the tools' names, got "${choice.function.name}"`,
      )
    }
    return only
  }
  return tools
}

export function openaiChatToOllama(
  req: OpenAIChatRequest,
  options: TranslateRequestOptions = {},
): OllamaChatRequest {
  refuseMany(req.n)
  const out: OllamaChatRequest = {
    model: options.model ?? req.model,
    messages: ollamaMessages(req.messages),
    stream: req.stream === true,
  }
  const tools = ollamaTools(req)
  if (tools) out.tools = tools
  const format = ollamaFormat(req.response_format)
  if (format !== undefined) out.format = format
  const opts = ollamaOptions(req, req.max_completion_tokens ?? req.max_tokens)
  if (opts) out.options = opts
  if (req.keep_alive !== null && req.keep_alive !== undefined) out.keep_alive = req.keep_alive
  if (req.logprobs) out.logprobs = true
  if (req.top_logprobs !== null && req.top_logprobs !== undefined) out.top_logprobs = req.top_logprobs
  const effort = req.reasoning_effort
  if (effort === 'none') out.think = false
  else if (effort === 'low' || effort === 'medium' || effort === 'high') out.think = effort
  return out
}

/**
 * OpenAI completions are raw text continuation (no chat template), so the Ollama request is
 * `raw: true`; one prompt string per request.
 */
export function openaiCompletionToOllamaGenerate(
  req: OpenAICompletionRequest,
  options: TranslateRequestOptions = {},
): OllamaGenerateRequest {
  refuseMany(req.n)
  let prompt: string
  if (typeof req.prompt === 'string') prompt = req.prompt
  else if (req.prompt.length === 1 && typeof req.prompt[0] === 'string') prompt = req.prompt[0]
  else if (req.prompt.every((item) => typeof item === 'string')) {
    throw badRequest('prompt', `an Ollama upstream takes one prompt per request, got ${req.prompt.length}`)
  } else {
    throw badRequest('prompt', 'an Ollama upstream takes text prompts, got token ids')
  }
  if (req.echo) throw badRequest('echo', 'an Ollama upstream cannot echo the prompt, got true')
  const out: OllamaGenerateRequest = {
    model: options.model ?? req.model,
    prompt,
    raw: true,
    stream: req.stream === true,
  }
  if (req.suffix) out.suffix = req.suffix
  const opts = ollamaOptions(req, req.max_tokens)
  if (opts) out.options = opts
  if (req.keep_alive !== null && req.keep_alive !== undefined) out.keep_alive = req.keep_alive
  if (req.logprobs !== null && req.logprobs !== undefined && req.logprobs > 0) {
    out.logprobs = true
    out.top_logprobs = req.logprobs
  }
  return out
}

export function openaiEmbeddingToOllama(
  req: OpenAIEmbeddingRequest,
  options: TranslateRequestOptions = {},
): OllamaEmbedRequest {
  const input = req.input
  if (typeof input !== 'string' && !input.every((item) => typeof item === 'string')) {
    throw badRequest('input', 'an Ollama upstream embeds text, got token ids')
  }
  const out: OllamaEmbedRequest = { model: options.model ?? req.model, input: input as string | string[] }
  if (req.dimensions !== null && req.dimensions !== undefined) out.dimensions = req.dimensions
  if (req.keep_alive !== null && req.keep_alive !== undefined) out.keep_alive = req.keep_alive
  return out
}

// ---------------------------------------------------------------------------------------------
// Ollama -> OpenAI

/**
 * Ollama `options` as OpenAI fields (llama-server's names for its extra samplers). Load-time
 * options (num_ctx, num_gpu, num_batch, num_thread, use_mmap, ...) have no per-request meaning
 * on an OpenAI-compatible server and are dropped; a managed llama-server gets them as arguments.
 */
function openaiSampling(
  options: OllamaOptions | null | undefined,
  out: OpenAIChatRequest | OpenAICompletionRequest,
): void {
  if (!options) return
  const set = (key: string, value: unknown): void => {
    if (value !== null && value !== undefined) out[key] = value
  }
  const predict = options.num_predict
  // -1 (until the model stops) and -2 (fill the context) both mean "no limit" to OpenAI.
  if (predict !== null && predict !== undefined && predict >= 0) out.max_tokens = predict
  set('temperature', options.temperature)
  set('top_p', options.top_p)
  set('top_k', options.top_k)
  set('min_p', options.min_p)
  set('typical_p', options.typical_p)
  set('seed', options.seed)
  set('stop', typeof options.stop === 'string' ? [options.stop] : options.stop)
  set('frequency_penalty', options.frequency_penalty)
  set('presence_penalty', options.presence_penalty)
  set('repeat_penalty', options.repeat_penalty)
  set('repeat_last_n', options.repeat_last_n)
  set('mirostat', options.mirostat)
  set('mirostat_tau', options.mirostat_tau)
  set('mirostat_eta', options.mirostat_eta)
  set('n_keep', options.num_keep)
}

function openaiResponseFormat(format: OllamaChatRequest['format']): OpenAIChatRequest['response_format'] {
  if (format === null || format === undefined || format === '') return undefined
  if (format === 'json') return { type: 'json_object' }
  return { type: 'json_schema', json_schema: { name: 'response', schema: format } }
}

function imagePart(base64: string): OpenAIContentPart {
  return { type: 'image_url', image_url: { url: `data:${imageMediaType(base64)};base64,${base64}` } }
}

function openaiMessages(messages: OllamaMessage[]): OpenAIMessage[] {
  // Ollama may leave tool calls without ids; OpenAI needs them to pair results with calls, so
  // missing ids are made up and results (named by function) take the oldest unanswered call.
  const pending = new Map<string, string[]>()
  const out: OpenAIMessage[] = new Array(messages.length)
  for (let i = 0; i < messages.length; i++) {
    const message = messages[i] as OllamaMessage
    const text = message.content ?? ''
    let content: OpenAIMessage['content'] = text
    if (message.images?.length) {
      const parts: OpenAIContentPart[] = text ? [{ type: 'text', text }] : []
      for (const image of message.images) parts.push(imagePart(image))
      content = parts
    }
    if (message.role === 'assistant') {
      const converted: OpenAIMessage = { role: 'assistant', content }
      if (message.tool_calls?.length) {
        if (text === '' && !message.images?.length) converted.content = null
        converted.tool_calls = message.tool_calls.map((call, index) => {
          const id = call.id ?? `call_${i}_${index}`
          const queue = pending.get(call.function.name)
          if (queue) queue.push(id)
          else pending.set(call.function.name, [id])
          return {
            id,
            type: 'function' as const,
            function: { name: call.function.name, arguments: JSON.stringify(call.function.arguments ?? {}) },
          }
        })
      }
      if (message.thinking) converted.reasoning_content = message.thinking
      out[i] = converted
    } else if (message.role === 'tool') {
      const converted: OpenAIMessage = { role: 'tool', content }
      let id = message.tool_call_id ?? undefined
      const name = message.tool_name ?? undefined
      if (name !== undefined) {
        const queue = pending.get(name)
        if (id === undefined) id = queue?.shift()
        else if (queue) {
          const at = queue.indexOf(id)
          if (at >= 0) queue.splice(at, 1)
        }
      }
      if (id !== undefined) converted.tool_call_id = id
      out[i] = converted
    } else {
      out[i] = { role: message.role, content }
    }
  }
  return out
}

export function ollamaChatToOpenai(
  req: OllamaChatRequest,
  options: TranslateRequestOptions = {},
): OpenAIChatRequest {
  // Ollama streams unless told not to; OpenAI only when asked.
  const stream = req.stream !== false
  const out: OpenAIChatRequest = {
    model: options.model ?? req.model,
    messages: openaiMessages(req.messages ?? []),
    stream,
  }
  // The final NDJSON line carries the counts, so ask for the usage chunk.
  if (stream) out.stream_options = { include_usage: true }
  if (req.tools?.length) out.tools = req.tools
  const format = openaiResponseFormat(req.format)
  if (format) out.response_format = format
  openaiSampling(req.options, out)
  if (req.logprobs) out.logprobs = true
  if (req.top_logprobs !== null && req.top_logprobs !== undefined && req.logprobs)
    out.top_logprobs = req.top_logprobs
  if (req.think === false) out['chat_template_kwargs'] = { enable_thinking: false }
  else if (typeof req.think === 'string') out.reasoning_effort = req.think
  return out
}

/**
 * Which OpenAI endpoint an Ollama generate request belongs on. Ollama applies the model's
 * template to a generate prompt (with `system`) unless `raw`, which is what a chat completion
 * does; only a raw prompt is a plain text completion.
 */
export function ollamaGenerateTarget(req: OllamaGenerateRequest): 'chat' | 'completion' {
  return req.raw === true ? 'completion' : 'chat'
}

/** A raw Ollama generate request as an OpenAI text completion (see ollamaGenerateTarget). */
export function ollamaGenerateToOpenaiCompletion(
  req: OllamaGenerateRequest,
  options: TranslateRequestOptions = {},
): OpenAICompletionRequest {
  const stream = req.stream !== false
  const out: OpenAICompletionRequest = {
    model: options.model ?? req.model,
    prompt: req.prompt ?? '',
    stream,
  }
  if (stream) out.stream_options = { include_usage: true }
  if (req.suffix) out.suffix = req.suffix
  openaiSampling(req.options, out)
  if (req.logprobs) out.logprobs = req.top_logprobs && req.top_logprobs > 0 ? req.top_logprobs : 1
  return out
}

/** A templated Ollama generate request (system + prompt + images) as an OpenAI chat completion. */
export function ollamaGenerateToOpenaiChat(
  req: OllamaGenerateRequest,
  options: TranslateRequestOptions = {},
): OpenAIChatRequest {
  const messages: OllamaMessage[] = []
  if (req.system) messages.push({ role: 'system', content: req.system })
  const user: OllamaMessage = { role: 'user', content: req.prompt ?? '' }
  if (req.images?.length) user.images = req.images
  messages.push(user)
  const chat: OllamaChatRequest = { model: req.model, messages }
  if (req.stream !== undefined && req.stream !== null) chat.stream = req.stream
  if (req.format !== undefined) chat.format = req.format
  if (req.options) chat.options = req.options
  if (req.think !== undefined) chat.think = req.think
  if (req.logprobs) chat.logprobs = req.logprobs
  if (req.top_logprobs !== undefined) chat.top_logprobs = req.top_logprobs
  return ollamaChatToOpenai(chat, options)
}

/** `/api/embed` and the legacy `/api/embeddings` as an OpenAI embedding request (floats back). */
export function ollamaEmbedToOpenai(
  req: OllamaEmbedRequest | OllamaEmbeddingsRequest,
  options: TranslateRequestOptions = {},
): OpenAIEmbeddingRequest {
  const embed = isEmbedRequest(req) ? req : undefined
  // Ollama answers an empty list with no vectors; an OpenAI-compatible server refuses it (llama-server with a 500).
  if (Array.isArray(embed?.input) && embed.input.length === 0) {
    throw badRequest(
      'input',
      'expected at least one string for an OpenAI-compatible upstream, got an empty array',
    )
  }
  const out: OpenAIEmbeddingRequest = {
    model: options.model ?? req.model,
    input: embed ? embed.input : (req as OllamaEmbeddingsRequest).prompt,
    encoding_format: 'float',
  }
  if (embed?.dimensions !== null && embed?.dimensions !== undefined) out.dimensions = embed.dimensions
  return out
}

function isEmbedRequest(req: OllamaEmbedRequest | OllamaEmbeddingsRequest): req is OllamaEmbedRequest {
  return (req as OllamaEmbedRequest).input !== undefined
}
