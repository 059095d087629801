/**
 * Streaming translation as small per-response state machines. The server feeds each upstream
 * chunk (already parsed: one JSON parse per chunk, which it needs anyway) to `push` and writes
 * what comes back; when the upstream ends (OpenAI's `[DONE]` or the socket closing) it calls
 * `end` and writes that too. Frames are built by string concatenation around prefixes computed
 * once per response, so a content chunk costs one JSON.stringify of its text.
 */
import {
  clockNow,
  completionLogprobs,
  doneReasonFromFinish,
  finishReasonFromDone,
  isRecord,
  ollamaLogprobs,
  ollamaMetrics,
  ollamaTimestamp,
  responseToolArguments,
  toolCallId,
  usageFromOllama,
} from './common.js'
import type {
  LlamaServerTimings,
  OllamaChatChunk,
  OllamaGenerateChunk,
  OllamaMetrics,
  OllamaResponseToolCall,
  OpenAIChatChunk,
  OpenAIFinishReason,
  OpenAITextCompletionChunk,
  OpenAIUsage,
  TokenLogprob,
  TranslateContext,
} from './types.js'

export interface StreamTranslator {
  /** One upstream chunk in; the bytes to write to the client out (possibly ''). */
  push(chunk: object): string
  /** The upstream ended; the closing bytes (possibly ''). Safe to call more than once. */
  end(): string
}

const ENDED_EARLY = 'the upstream ended the stream before it finished'

/**
 * The message of an upstream error body or stream chunk in either format: Ollama's
 * `{"error": "..."}` or OpenAI's `{"error": {"message": "..."}}`; undefined when it is not one.
 */
export function streamErrorMessage(body: unknown): string | undefined {
  if (!isRecord(body)) return undefined
  const error = body['error']
  if (error === undefined || error === null) return undefined
  if (typeof error === 'string') return error
  if (isRecord(error) && typeof error['message'] === 'string') return error['message']
  return JSON.stringify(error)
}

// ---------------------------------------------------------------------------------------------
// Ollama NDJSON -> OpenAI SSE

function sseError(message: string): string {
  return `data: ${JSON.stringify({ error: { message, type: 'upstream_error', code: null } })}\n\n`
}

/**
 * Ollama `/api/chat` or `/api/generate` lines as OpenAI `chat.completion.chunk` or
 * `text_completion` SSE frames: the first frame carries the role, tool calls go out whole as
 * deltas with index and id, the last frame has the finish_reason, then a usage frame when the
 * client asked for `stream_options.include_usage`, then `data: [DONE]`.
 */
export function createOllamaToOpenAIStream(
  kind: 'chat' | 'completion',
  ctx: TranslateContext,
): StreamTranslator {
  const head = `data: {"id":${JSON.stringify(ctx.id)},"object":"${kind === 'chat' ? 'chat.completion.chunk' : 'text_completion'}","created":${ctx.created},"model":${JSON.stringify(ctx.model)},"choices":`
  const choiceHead = kind === 'chat' ? `${head}[{"index":0,"delta":` : `${head}[{"index":0,"text":`
  let roleSent = false
  let toolCalls = 0
  let finished = false

  const chatFrame = (delta: string, logprobs: TokenLogprob[] | undefined, finish: string): string => {
    const open = roleSent ? '{' : '{"role":"assistant",'
    roleSent = true
    const body = delta === '' ? (open.length > 1 ? open.slice(0, -1) : open) : open + delta
    const lp = logprobs ? `,"logprobs":{"content":${JSON.stringify(logprobs)}}` : ''
    return `${choiceHead}${body}}${lp},"finish_reason":${finish}}]}\n\n`
  }

  const completionFrame = (text: string, logprobs: TokenLogprob[] | undefined, finish: string): string => {
    const lp = logprobs ? JSON.stringify(completionLogprobs(logprobs)) : 'null'
    return `${choiceHead}${JSON.stringify(text)},"logprobs":${lp},"finish_reason":${finish}}]}\n\n`
  }

  const finish = (chunk: OllamaMetrics & { done_reason?: string }): string => {
    finished = true
    const reason: OpenAIFinishReason = toolCalls > 0 ? 'tool_calls' : finishReasonFromDone(chunk.done_reason)
    let out =
      kind === 'chat'
        ? chatFrame('', undefined, `"${reason}"`)
        : completionFrame('', undefined, `"${reason}"`)
    if (ctx.includeUsage) out += `${head}[],"usage":${JSON.stringify(usageFromOllama(chunk))}}\n\n`
    return `${out}data: [DONE]\n\n`
  }

  return {
    push(chunk) {
      if (finished) return ''
      const error = streamErrorMessage(chunk)
      if (error !== undefined) {
        finished = true
        return sseError(error)
      }
      let out = ''
      if (kind === 'chat') {
        const line = chunk as OllamaChatChunk
        const message = line.message
        let delta = ''
        if (message?.content) delta = `"content":${JSON.stringify(message.content)}`
        if (message?.thinking) {
          delta += `${delta ? ',' : ''}"reasoning_content":${JSON.stringify(message.thinking)}`
        }
        const calls = message?.tool_calls
        if (calls?.length) {
          let deltas = ''
          for (const call of calls) {
            const index = toolCalls++
            const id = call.id || toolCallId(ctx, index)
            const fn = `{"name":${JSON.stringify(call.function.name)},"arguments":${JSON.stringify(JSON.stringify(call.function.arguments ?? {}))}}`
            deltas += `${deltas ? ',' : ''}{"index":${index},"id":${JSON.stringify(id)},"type":"function","function":${fn}}`
          }
          delta += `${delta ? ',' : ''}"tool_calls":[${deltas}]`
        }
        if (delta !== '' || line.logprobs?.length) out = chatFrame(delta, line.logprobs, 'null')
      } else {
        const line = chunk as OllamaGenerateChunk
        if (line.response || line.logprobs?.length)
          out = completionFrame(line.response ?? '', line.logprobs, 'null')
      }
      if ((chunk as { done?: boolean }).done === true) out += finish(chunk as OllamaChatChunk)
      return out
    },
    end() {
      if (finished) return ''
      finished = true
      return sseError(ENDED_EARLY)
    },
  }
}

// ---------------------------------------------------------------------------------------------
// OpenAI SSE -> Ollama NDJSON

interface PendingToolCall {
  id: string | undefined
  name: string
  arguments: string
}

/**
 * OpenAI `chat.completion.chunk` or `text_completion` chunks as Ollama `/api/chat` or
 * `/api/generate` NDJSON lines. Tool call deltas are assembled and sent as one line with whole
 * Ollama tool calls (arguments parsed) when the choice finishes; the last line (`done: true`)
 * comes at `end()`, after the usage chunk, with the counts and durations from usage and
 * llama-server's timings. `kind: 'generate'` accepts chat chunks too (a templated generate
 * request goes to the chat endpoint).
 */
export function createOpenAIToOllamaStream(
  kind: 'chat' | 'generate',
  ctx: TranslateContext,
): StreamTranslator {
  const head = `{"model":${JSON.stringify(ctx.model)},"created_at":"`
  const pending: PendingToolCall[] = []
  let usage: OpenAIUsage | undefined
  let timings: LlamaServerTimings | undefined
  let finishReason: OpenAIFinishReason | null = null
  let firstTokenAt: number | undefined
  let finished = false

  const line = (
    content: string,
    thinking: string | undefined,
    logprobs: TokenLogprob[] | undefined,
  ): string => {
    firstTokenAt ??= clockNow(ctx)
    const think = thinking ? `,"thinking":${JSON.stringify(thinking)}` : ''
    const lp = logprobs?.length ? `,"logprobs":${JSON.stringify(ollamaLogprobs(logprobs))}` : ''
    if (kind === 'chat') {
      return `${head}${ollamaTimestamp()}","message":{"role":"assistant","content":${JSON.stringify(content)}${think}},"done":false${lp}}\n`
    }
    return `${head}${ollamaTimestamp()}","response":${JSON.stringify(content)}${think},"done":false${lp}}\n`
  }

  const toolLine = (): string => {
    if (pending.length === 0) return ''
    const calls: OllamaResponseToolCall[] = []
    for (const call of pending) {
      // A server that skipped an index leaves a hole; there is no call to send for it.
      if (!call) continue
      const out: OllamaResponseToolCall = {
        function: { index: calls.length, name: call.name, arguments: responseToolArguments(call.arguments) },
      }
      if (call.id) out.id = call.id
      calls.push(out)
    }
    pending.length = 0
    if (kind !== 'chat') return ''
    return `${head}${ollamaTimestamp()}","message":{"role":"assistant","content":"","tool_calls":${JSON.stringify(calls)}},"done":false}\n`
  }

  const addToolDeltas = (
    deltas: NonNullable<OpenAIChatChunk['choices'][number]['delta']['tool_calls']>,
  ): void => {
    firstTokenAt ??= clockNow(ctx)
    for (const delta of deltas) {
      const index = typeof delta.index === 'number' ? delta.index : pending.length
      let call = pending[index]
      if (!call) {
        call = { id: undefined, name: '', arguments: '' }
        pending[index] = call
      }
      if (delta.id) call.id = delta.id
      const name = delta.function?.name
      // Some servers repeat the whole name in every delta, others split it.
      if (name && name !== call.name) call.name += name
      const args = delta.function?.arguments
      if (args) call.arguments += args
    }
  }

  return {
    push(chunk) {
      if (finished) return ''
      const error = streamErrorMessage(chunk)
      if (error !== undefined) {
        finished = true
        return `${JSON.stringify({ error })}\n`
      }
      const upstream = chunk as OpenAIChatChunk | OpenAITextCompletionChunk
      if (upstream.usage) usage = upstream.usage
      if (upstream.timings) timings = upstream.timings
      const choices = upstream.choices
      if (!choices || choices.length === 0) return ''
      let out = ''
      for (const choice of choices) {
        if (choice.index !== 0 && choices.length > 1) continue
        const logprobs = choice.logprobs
        const entries =
          isRecord(logprobs) && Array.isArray(logprobs['content'])
            ? (logprobs['content'] as TokenLogprob[])
            : undefined
        if ('delta' in choice) {
          const delta = choice.delta
          if (delta) {
            const content = delta.content ?? ''
            const thinking = delta.reasoning_content ?? undefined
            if (content !== '' || thinking || entries?.length) out += line(content, thinking, entries)
            if (delta.tool_calls?.length) addToolDeltas(delta.tool_calls)
          }
        } else if ('text' in choice && choice.text) {
          out += line(choice.text, undefined, undefined)
        }
        if (choice.finish_reason) {
          finishReason = choice.finish_reason
          out += toolLine()
        }
      }
      return out
    },
    end() {
      if (finished) return ''
      finished = true
      if (finishReason === null && pending.length === 0) return `${JSON.stringify({ error: ENDED_EARLY })}\n`
      const tools = toolLine()
      const metrics = ollamaMetrics(usage, timings, ctx, firstTokenAt)
      const last =
        kind === 'chat'
          ? { model: ctx.model, created_at: ollamaTimestamp(), message: { role: 'assistant', content: '' } }
          : { model: ctx.model, created_at: ollamaTimestamp(), response: '' }
      return `${tools}${JSON.stringify({ ...last, done: true, done_reason: doneReasonFromFinish(finishReason), ...metrics })}\n`
    },
  }
}
