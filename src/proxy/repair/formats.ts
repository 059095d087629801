import { parseEnforcedOutput } from './enforce.js'
import { newCallId, type RepairOptions, repairToolCalls } from './repair.js'
import {
  isRecord,
  type RawToolCall,
  type RepairedToolCall,
  type RepairResult,
  type ToolSpec,
} from './types.js'

/**
 * Tool-call repair on complete (non-streamed) responses, in the OpenAI and Ollama wire formats.
 * Both functions return a new response object and leave the input alone.
 */

export interface FormatRepairOptions extends RepairOptions {
  /**
   * Keep calls that stay invalid in the response as the model wrote them (default false: they are
   * left out and reported in the result, for the server to retry or answer with an error).
   */
  keepInvalid?: boolean
  /**
   * The request went out with enforcement (enforce.ts): the answer's text is the constrained JSON,
   * a call or `{"content": "..."}`, which becomes a plain assistant message.
   */
  enforced?: boolean
}

/**
 * The calls of one message: repaired as sent, or, for an enforced answer without native calls, read
 * from its constrained JSON. `changed` also when the text itself was unwrapped.
 */
function repairMessage(
  content: string | null,
  raw: RawToolCall[],
  tools: readonly ToolSpec[],
  options: FormatRepairOptions,
): RepairResult {
  if (options.enforced && raw.length === 0 && content) {
    const result = parseEnforcedOutput(content, tools, options)
    return result.content === content ? result : { ...result, changed: true }
  }
  return repairToolCalls({ content, toolCalls: raw }, tools, options)
}

/** OpenAI `tool_calls` entries. */
export function openAIToolCalls(calls: readonly RepairedToolCall[]) {
  return calls.map((call) => ({
    id: call.id,
    type: 'function' as const,
    function: { name: call.name, arguments: call.argumentsJson },
  }))
}

/** Ollama `tool_calls` entries (arguments as an object). */
export function ollamaToolCalls(calls: readonly RepairedToolCall[]) {
  return calls.map((call, index) => ({
    id: call.id,
    function: { index, name: call.name, arguments: call.arguments },
  }))
}

export function rawFromOpenAI(toolCalls: unknown): RawToolCall[] {
  if (!Array.isArray(toolCalls)) return []
  return toolCalls.filter(isRecord).map((call) => {
    const fn = isRecord(call['function']) ? call['function'] : {}
    return {
      id: typeof call['id'] === 'string' ? call['id'] : undefined,
      name: typeof fn['name'] === 'string' ? fn['name'] : undefined,
      arguments: fn['arguments'],
    }
  })
}

export function rawFromOllama(toolCalls: unknown): RawToolCall[] {
  return rawFromOpenAI(toolCalls)
}

function invalidAsOpenAI(result: RepairResult) {
  return result.problems.map((problem) => ({
    id: problem.raw.id ?? newCallId(),
    type: 'function' as const,
    function: {
      name: problem.raw.name ?? '',
      arguments:
        typeof problem.raw.arguments === 'string'
          ? problem.raw.arguments
          : JSON.stringify(problem.raw.arguments ?? {}),
    },
  }))
}

/** Repair every choice of an OpenAI chat completion. */
export function repairOpenAIChatResponse(
  response: unknown,
  tools: readonly ToolSpec[],
  options: FormatRepairOptions = {},
): { response: unknown; results: RepairResult[] } {
  if (!isRecord(response) || !Array.isArray(response['choices'])) return { response, results: [] }
  const results: RepairResult[] = []
  let anyChanged = false
  const choices = response['choices'].map((choice: unknown) => {
    if (!isRecord(choice) || !isRecord(choice['message'])) return choice
    const message = choice['message']
    const content = typeof message['content'] === 'string' ? message['content'] : null
    const raw = rawFromOpenAI(message['tool_calls'])
    if (raw.length === 0 && (tools.length === 0 || !content)) return choice
    const result = repairMessage(content, raw, tools, options)
    results.push(result)
    if (!result.changed && result.ok) return choice
    anyChanged = true
    const toolCalls = [
      ...openAIToolCalls(result.calls),
      ...(options.keepInvalid ? invalidAsOpenAI(result) : []),
    ]
    const next: Record<string, unknown> = { ...message, content: result.content }
    if (toolCalls.length > 0) next['tool_calls'] = toolCalls
    else delete next['tool_calls']
    const finish = choice['finish_reason']
    return {
      ...choice,
      message: next,
      finish_reason:
        toolCalls.length > 0 && finish !== 'content_filter'
          ? 'tool_calls'
          : finish === 'tool_calls'
            ? 'stop'
            : finish,
    }
  })
  // Nothing changed: hand back the upstream's object, so the server can send its bytes as they were.
  return { response: anyChanged ? { ...response, choices } : response, results }
}

/** Repair the message of an Ollama /api/chat response. */
export function repairOllamaChatResponse(
  response: unknown,
  tools: readonly ToolSpec[],
  options: FormatRepairOptions = {},
): { response: unknown; result: RepairResult | undefined } {
  if (!isRecord(response) || !isRecord(response['message'])) return { response, result: undefined }
  const message = response['message']
  const content = typeof message['content'] === 'string' ? message['content'] : null
  const raw = rawFromOllama(message['tool_calls'])
  if (raw.length === 0 && (tools.length === 0 || !content)) return { response, result: undefined }
  const result = repairMessage(content, raw, tools, options)
  if (!result.changed && result.ok) return { response, result }
  const toolCalls: unknown[] = ollamaToolCalls(result.calls)
  if (options.keepInvalid) {
    for (const problem of result.problems)
      toolCalls.push({ function: { name: problem.raw.name, arguments: problem.raw.arguments } })
  }
  const next: Record<string, unknown> = { ...message, content: result.content ?? '' }
  if (toolCalls.length > 0) next['tool_calls'] = toolCalls
  else delete next['tool_calls']
  return { response: { ...response, message: next }, result }
}
