/** Non-streamed response translation between the OpenAI and Ollama APIs. */
import {
  completionLogprobs,
  doneReasonFromFinish,
  elapsedNs,
  finishReasonFromDone,
  ollamaLogprobs,
  ollamaMetrics,
  ollamaTimestamp,
  responseToolArguments,
  toolCallId,
  usageFromOllama,
} from './common.js'
import type {
  OllamaChatResponse,
  OllamaEmbeddingsResponse,
  OllamaEmbedResponse,
  OllamaGenerateResponse,
  OllamaResponseToolCall,
  OpenAIChatCompletion,
  OpenAIEmbeddingList,
  OpenAIResponseToolCall,
  OpenAITextCompletion,
  TranslateContext,
} from './types.js'

type ResponseContext = Pick<TranslateContext, 'model' | 'id' | 'created'>
type TimingContext = Pick<TranslateContext, 'model' | 'startedAt' | 'now'>

// ---------------------------------------------------------------------------------------------
// Ollama -> OpenAI

export function openaiToolCalls(
  calls: OllamaResponseToolCall[],
  ctx: Pick<TranslateContext, 'id'>,
  offset = 0,
): OpenAIResponseToolCall[] {
  return calls.map((call, i) => ({
    id: call.id || toolCallId(ctx, offset + i),
    type: 'function',
    function: { name: call.function.name, arguments: JSON.stringify(call.function.arguments ?? {}) },
  }))
}

export function ollamaChatResponseToOpenai(
  res: OllamaChatResponse,
  ctx: ResponseContext,
): OpenAIChatCompletion {
  const calls = res.message?.tool_calls
  const content = res.message?.content ?? ''
  const message: OpenAIChatCompletion['choices'][number]['message'] = {
    role: 'assistant',
    content: content === '' && calls?.length ? null : content,
  }
  if (calls?.length) message.tool_calls = openaiToolCalls(calls, ctx)
  if (res.message?.thinking) message.reasoning_content = res.message.thinking
  const choice: OpenAIChatCompletion['choices'][number] = {
    index: 0,
    message,
    finish_reason: calls?.length ? 'tool_calls' : finishReasonFromDone(res.done_reason),
  }
  if (res.logprobs) choice.logprobs = { content: res.logprobs }
  return {
    id: ctx.id,
    object: 'chat.completion',
    created: ctx.created,
    model: ctx.model,
    choices: [choice],
    usage: usageFromOllama(res),
  }
}

export function ollamaGenerateResponseToOpenaiCompletion(
  res: OllamaGenerateResponse,
  ctx: ResponseContext,
): OpenAITextCompletion {
  return {
    id: ctx.id,
    object: 'text_completion',
    created: ctx.created,
    model: ctx.model,
    choices: [
      {
        index: 0,
        text: res.response ?? '',
        finish_reason: finishReasonFromDone(res.done_reason),
        logprobs: res.logprobs ? completionLogprobs(res.logprobs) : null,
      },
    ],
    usage: usageFromOllama(res),
  }
}

/** Float32 little-endian, base64: what OpenAI sends for `encoding_format: "base64"`. */
export function floatsToBase64(values: readonly number[]): string {
  const floats = Float32Array.from(values)
  return Buffer.from(floats.buffer, floats.byteOffset, floats.byteLength).toString('base64')
}

export function base64ToFloats(text: string): number[] {
  const bytes = Buffer.from(text, 'base64')
  const floats = new Float32Array(bytes.buffer, bytes.byteOffset, Math.floor(bytes.byteLength / 4))
  return Array.from(floats)
}

/**
 * `/api/embed` (or, with one vector, the legacy `/api/embeddings`) as an OpenAI embedding list.
 * The official openai client asks for base64 unless told otherwise, so the encoding is honoured.
 */
export function ollamaEmbedResponseToOpenai(
  res: OllamaEmbedResponse | OllamaEmbeddingsResponse,
  ctx: Pick<TranslateContext, 'model'> & { encodingFormat?: 'float' | 'base64' | null },
): OpenAIEmbeddingList {
  const embed = Array.isArray((res as OllamaEmbedResponse).embeddings)
    ? (res as OllamaEmbedResponse)
    : undefined
  const vectors = embed ? embed.embeddings : [(res as OllamaEmbeddingsResponse).embedding]
  const base64 = ctx.encodingFormat === 'base64'
  const tokens = embed?.prompt_eval_count ?? 0
  return {
    object: 'list',
    model: ctx.model,
    data: vectors.map((vector, index) => ({
      object: 'embedding',
      index,
      embedding: base64 ? floatsToBase64(vector) : vector,
    })),
    usage: { prompt_tokens: tokens, total_tokens: tokens },
  }
}

// ---------------------------------------------------------------------------------------------
// OpenAI -> Ollama

export function ollamaToolCalls(calls: OpenAIResponseToolCall[]): OllamaResponseToolCall[] {
  return calls.map((call, index) => {
    const out: OllamaResponseToolCall = {
      function: {
        index,
        name: call.function.name,
        arguments: responseToolArguments(call.function.arguments),
      },
    }
    if (call.id) out.id = call.id
    return out
  })
}

export function openaiChatResponseToOllama(
  res: OpenAIChatCompletion,
  ctx: TimingContext,
): OllamaChatResponse {
  const choice = res.choices[0]
  const message: OllamaChatResponse['message'] = { role: 'assistant', content: choice?.message.content ?? '' }
  if (choice?.message.reasoning_content) message.thinking = choice.message.reasoning_content
  if (choice?.message.tool_calls?.length) message.tool_calls = ollamaToolCalls(choice.message.tool_calls)
  const out: OllamaChatResponse = {
    model: ctx.model,
    created_at: ollamaTimestamp(),
    message,
    done: true,
    done_reason: doneReasonFromFinish(choice?.finish_reason),
    ...ollamaMetrics(res.usage, res.timings, ctx),
  }
  const logprobs = choice?.logprobs?.content
  if (logprobs) out.logprobs = ollamaLogprobs(logprobs)
  return out
}

/** A text completion, or a chat completion (a templated generate went to the chat endpoint). */
export function openaiCompletionResponseToOllamaGenerate(
  res: OpenAITextCompletion | OpenAIChatCompletion,
  ctx: TimingContext,
): OllamaGenerateResponse {
  let text = ''
  let thinking: string | undefined
  const choice = res.choices[0]
  if (choice && 'text' in choice) text = choice.text ?? ''
  else if (choice && 'message' in choice) {
    text = choice.message.content ?? ''
    thinking = choice.message.reasoning_content
  }
  const out: OllamaGenerateResponse = {
    model: ctx.model,
    created_at: ollamaTimestamp(),
    response: text,
    done: true,
    done_reason: doneReasonFromFinish(choice?.finish_reason),
    ...ollamaMetrics(res.usage, res.timings, ctx),
  }
  if (thinking) out.thinking = thinking
  return out
}

function vectorsOf(res: OpenAIEmbeddingList): number[][] {
  const data = res.data.length > 1 ? [...res.data].sort((a, b) => a.index - b.index) : res.data
  return data.map((item) =>
    typeof item.embedding === 'string' ? base64ToFloats(item.embedding) : item.embedding,
  )
}

export function openaiEmbeddingResponseToOllama(
  res: OpenAIEmbeddingList,
  ctx: TimingContext,
): OllamaEmbedResponse {
  return {
    model: ctx.model,
    embeddings: vectorsOf(res),
    total_duration: elapsedNs(ctx),
    load_duration: 0,
    prompt_eval_count: res.usage?.prompt_tokens ?? 0,
  }
}

/** The legacy `/api/embeddings` answer: the first vector alone. */
export function openaiEmbeddingResponseToOllamaLegacy(res: OpenAIEmbeddingList): OllamaEmbeddingsResponse {
  return { embedding: vectorsOf(res)[0] ?? [] }
}
