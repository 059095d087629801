/**
 * Request schemas for both client APIs. Every object is loose: fields velo does not know
 * (llama-server's `id_slot`, `cache_prompt`, `n_probs`, `timings_per_token`, vendor extensions)
 * pass through untouched when a request goes to an upstream of the same kind. Optional fields
 * also accept `null`, which many clients (Python's, LangChain's) send for "not set".
 */
import { z } from 'zod'

const text = z.string({ error: 'expected a string' })
const count = z.int({ error: 'expected an integer' }).min(0, { error: 'expected an integer >= 0' })
const num = z.number({ error: 'expected a number' })
const flag = z.boolean({ error: 'expected true or false' })
const jsonObject = z.record(z.string(), z.unknown(), { error: 'expected a JSON object' })

// ---------------------------------------------------------------------------------------------
// OpenAI

const openaiStop = z
  .union([text, z.array(text, { error: 'expected a string or an array of strings' })], {
    error: 'expected a string or an array of strings',
  })
  .nullish()

const openaiStreamOptions = z
  .looseObject(
    { include_usage: flag.nullish() },
    { error: 'expected an object like {"include_usage": true}' },
  )
  .nullish()

/** A content part: text and image_url are checked; other kinds (input_audio, file) pass as they are. */
export const openaiContentPartSchema = z
  .looseObject(
    {
      type: text,
      text: text.optional(),
      image_url: z
        .union([text, z.looseObject({ url: text, detail: text.nullish() })], {
          error: 'expected {"url": "..."}',
        })
        .optional(),
    },
    { error: 'expected a content part object like {"type": "text", "text": "..."}' },
  )
  .superRefine((part, ctx) => {
    if (part.type === 'text' && typeof part.text !== 'string') {
      ctx.addIssue({ code: 'custom', path: ['text'], message: 'expected a string (the part is type "text")' })
    }
    if (part.type === 'image_url' && part.image_url === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['image_url'],
        message: 'expected {"url": "..."} (the part is type "image_url")',
      })
    }
  })

const openaiContent = z.union([text, z.array(openaiContentPartSchema)], {
  error: 'expected a string or an array of content parts',
})

export const openaiToolCallSchema = z.looseObject(
  {
    id: text.optional(),
    // `type` and `arguments` are required, as OpenAI requires them: llama-server answers a call
    // without either with a 500.
    type: z.literal('function', { error: 'expected "function"' }),
    function: z.looseObject(
      { name: text, arguments: text.nullable() },
      { error: 'expected {"name": "...", "arguments": "<JSON string>"}' },
    ),
  },
  { error: 'expected a tool call object' },
)

export const OPENAI_ROLES = ['system', 'developer', 'user', 'assistant', 'tool', 'function'] as const

export const openaiMessageSchema = z
  .looseObject(
    {
      role: z.enum(OPENAI_ROLES),
      content: openaiContent.nullish(),
      name: text.nullish(),
      tool_calls: z.array(openaiToolCallSchema, { error: 'expected an array of tool calls' }).nullish(),
      tool_call_id: text.nullish(),
      /** llama-server's and DeepSeek's field for an assistant's thinking. */
      reasoning_content: text.nullish(),
    },
    { error: 'expected a message object like {"role": "user", "content": "..."}' },
  )
  .superRefine((message, ctx) => {
    const hasContent = message.content !== undefined && message.content !== null
    if (message.role === 'assistant') {
      if (!hasContent && !message.tool_calls?.length && !message.reasoning_content) {
        ctx.addIssue({
          code: 'custom',
          path: ['content'],
          message: 'expected content or tool_calls in an assistant message',
        })
      }
    } else if (!hasContent) {
      ctx.addIssue({
        code: 'custom',
        path: ['content'],
        message: `expected a string or an array of content parts`,
      })
    }
  })

export const openaiToolSchema = z.looseObject(
  {
    type: z.literal('function', { error: 'expected "function"' }),
    function: z.looseObject(
      {
        name: text,
        description: text.nullish(),
        parameters: jsonObject.nullish(),
        strict: flag.nullish(),
      },
      { error: 'expected {"name": "...", "parameters": {...}}' },
    ),
  },
  { error: 'expected a tool like {"type": "function", "function": {...}}' },
)

const openaiToolChoice = z
  .union(
    [
      z.enum(['none', 'auto', 'required']),
      z.looseObject({ type: z.literal('function'), function: z.looseObject({ name: text }) }),
    ],
    { error: 'expected "none", "auto", "required" or {"type": "function", "function": {"name": "..."}}' },
  )
  .nullish()

const openaiResponseFormat = z
  .looseObject(
    {
      type: z.enum(['text', 'json_object', 'json_schema']),
      json_schema: z
        .looseObject(
          { name: text.optional(), schema: jsonObject.nullish(), strict: flag.nullish() },
          { error: 'expected {"name": "...", "schema": {...}}' },
        )
        .optional(),
      /** llama-server's extension: a schema inside `{"type": "json_object"}`. */
      schema: jsonObject.nullish(),
    },
    { error: 'expected an object like {"type": "json_object"}' },
  )
  .superRefine((format, ctx) => {
    if (format.type === 'json_schema' && format.json_schema === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['json_schema'],
        message: 'expected {"name": "...", "schema": {...}} (the type is "json_schema")',
      })
    }
  })
  .nullish()

/** Sampling fields llama-server takes beside OpenAI's; typed so that translation can map them. */
const llamaServerSampling = {
  top_k: num.nullish(),
  min_p: num.nullish(),
  typical_p: num.nullish(),
  repeat_penalty: num.nullish(),
  repeat_last_n: z.int({ error: 'expected an integer' }).nullish(),
  mirostat: z.int({ error: 'expected an integer' }).nullish(),
  mirostat_tau: num.nullish(),
  mirostat_eta: num.nullish(),
  n_keep: z.int({ error: 'expected an integer' }).nullish(),
}

const openaiCommon = {
  model: text,
  stream: flag.nullish(),
  stream_options: openaiStreamOptions,
  max_tokens: count.nullish(),
  temperature: num.nullish(),
  top_p: num.nullish(),
  n: z.int({ error: 'expected an integer' }).min(1, { error: 'expected an integer >= 1' }).nullish(),
  stop: openaiStop,
  seed: z.int({ error: 'expected an integer' }).nullish(),
  frequency_penalty: num.nullish(),
  presence_penalty: num.nullish(),
  user: text.nullish(),
  /** Ollama's field, honoured when an OpenAI request goes to an Ollama upstream. */
  keep_alive: z.union([text, num], { error: 'expected a duration like "5m" or seconds' }).nullish(),
  ...llamaServerSampling,
}

/**
 * A completion prompt or embedding input: text or token ids. An empty list is refused here: OpenAI
 * refuses it too, and llama-server answers it with a 500.
 */
const textOrTokens = z.union(
  [
    text,
    z.array(text).min(1),
    z.array(z.int()).min(1),
    z.array(z.array(z.int()).min(1, { error: 'expected a non-empty array of token ids' })).min(1),
  ],
  { error: 'expected a string, an array of strings, or token arrays' },
)

export const openaiChatRequestSchema = z.looseObject(
  {
    ...openaiCommon,
    messages: z
      .array(openaiMessageSchema, { error: 'expected an array of messages' })
      .min(1, { error: 'expected at least one message' }),
    max_completion_tokens: count.nullish(),
    tools: z.array(openaiToolSchema, { error: 'expected an array of tools' }).nullish(),
    tool_choice: openaiToolChoice,
    parallel_tool_calls: flag.nullish(),
    response_format: openaiResponseFormat,
    logprobs: flag.nullish(),
    top_logprobs: count.nullish(),
    reasoning_effort: text.nullish(),
  },
  { error: 'expected a JSON object' },
)

export const openaiCompletionRequestSchema = z.looseObject(
  {
    ...openaiCommon,
    prompt: textOrTokens,
    suffix: text.nullish(),
    echo: flag.nullish(),
    best_of: z.int({ error: 'expected an integer' }).nullish(),
    logprobs: count.nullish(),
  },
  { error: 'expected a JSON object' },
)

export const openaiEmbeddingRequestSchema = z.looseObject(
  {
    model: text,
    input: textOrTokens,
    encoding_format: z.enum(['float', 'base64']).nullish(),
    dimensions: z
      .int({ error: 'expected an integer' })
      .min(1, { error: 'expected an integer >= 1' })
      .nullish(),
    user: text.nullish(),
    keep_alive: z.union([text, num], { error: 'expected a duration like "5m" or seconds' }).nullish(),
  },
  { error: 'expected a JSON object' },
)

// ---------------------------------------------------------------------------------------------
// Ollama

/** Ollama's `options`: the known keys are typed, the rest (num_gpu, use_mmap, ...) pass through. */
export const ollamaOptionsSchema = z
  .looseObject(
    {
      num_ctx: z.int({ error: 'expected an integer' }).nullish(),
      num_predict: z.int({ error: 'expected an integer' }).nullish(),
      num_keep: z.int({ error: 'expected an integer' }).nullish(),
      seed: z.int({ error: 'expected an integer' }).nullish(),
      temperature: num.nullish(),
      top_k: num.nullish(),
      top_p: num.nullish(),
      min_p: num.nullish(),
      typical_p: num.nullish(),
      repeat_last_n: z.int({ error: 'expected an integer' }).nullish(),
      repeat_penalty: num.nullish(),
      presence_penalty: num.nullish(),
      frequency_penalty: num.nullish(),
      mirostat: z.int({ error: 'expected an integer' }).nullish(),
      mirostat_tau: num.nullish(),
      mirostat_eta: num.nullish(),
      stop: z.union([text, z.array(text)], { error: 'expected an array of strings' }).nullish(),
    },
    { error: 'expected an object of model options' },
  )
  .nullish()

const ollamaFormat = z
  .union([z.literal(['json', '']), jsonObject], { error: 'expected "json" or a JSON schema object' })
  .nullish()

const keepAlive = z.union([text, num], { error: 'expected a duration like "5m" or seconds' }).nullish()

const think = z
  .union([flag, z.enum(['high', 'medium', 'low'])], {
    error: 'expected true, false, "high", "medium" or "low"',
  })
  .nullish()

export const ollamaToolCallSchema = z.looseObject(
  {
    id: text.optional(),
    function: z.looseObject(
      {
        index: z.int({ error: 'expected an integer' }).optional(),
        name: text,
        arguments: jsonObject.nullish(),
      },
      { error: 'expected {"name": "...", "arguments": {...}}' },
    ),
  },
  { error: 'expected a tool call object' },
)

export const OLLAMA_ROLES = ['system', 'user', 'assistant', 'tool'] as const

export const ollamaMessageSchema = z.looseObject(
  {
    role: z.enum(OLLAMA_ROLES),
    content: text.nullish(),
    thinking: text.nullish(),
    images: z.array(text, { error: 'expected an array of base64 strings' }).nullish(),
    tool_calls: z.array(ollamaToolCallSchema, { error: 'expected an array of tool calls' }).nullish(),
    tool_name: text.nullish(),
    tool_call_id: text.nullish(),
  },
  { error: 'expected a message object like {"role": "user", "content": "..."}' },
)

export const ollamaChatRequestSchema = z.looseObject(
  {
    model: text,
    // Empty is valid: Ollama loads (or, with keep_alive 0, unloads) the model and answers done.
    messages: z.array(ollamaMessageSchema, { error: 'expected an array of messages' }).nullish(),
    tools: z.array(openaiToolSchema, { error: 'expected an array of tools' }).nullish(),
    format: ollamaFormat,
    options: ollamaOptionsSchema,
    stream: flag.nullish(),
    keep_alive: keepAlive,
    think,
    logprobs: flag.nullish(),
    top_logprobs: count.nullish(),
  },
  { error: 'expected a JSON object' },
)

export const ollamaGenerateRequestSchema = z.looseObject(
  {
    model: text,
    prompt: text.nullish(),
    suffix: text.nullish(),
    system: text.nullish(),
    template: text.nullish(),
    context: z
      .array(z.int({ error: 'expected a token id (an integer)' }), {
        error: 'expected an array of token ids',
      })
      .nullish(),
    raw: flag.nullish(),
    images: z.array(text, { error: 'expected an array of base64 strings' }).nullish(),
    format: ollamaFormat,
    options: ollamaOptionsSchema,
    stream: flag.nullish(),
    keep_alive: keepAlive,
    think,
    logprobs: flag.nullish(),
    top_logprobs: count.nullish(),
  },
  { error: 'expected a JSON object' },
)

export const ollamaEmbedRequestSchema = z.looseObject(
  {
    model: text,
    input: z.union([text, z.array(text)], { error: 'expected a string or an array of strings' }),
    truncate: flag.nullish(),
    dimensions: z
      .int({ error: 'expected an integer' })
      .min(1, { error: 'expected an integer >= 1' })
      .nullish(),
    options: ollamaOptionsSchema,
    keep_alive: keepAlive,
  },
  { error: 'expected a JSON object' },
)

/** The legacy `/api/embeddings`: one prompt, one un-normalized vector. */
export const ollamaEmbeddingsRequestSchema = z.looseObject(
  {
    model: text,
    prompt: text,
    options: ollamaOptionsSchema,
    keep_alive: keepAlive,
  },
  { error: 'expected a JSON object' },
)
