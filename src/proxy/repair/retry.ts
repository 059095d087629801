import { VeloError } from '../../core/errors.js'
import { describeProblems } from './repair.js'
import type { RepairResult } from './types.js'

/**
 * What to do when tool calls stay invalid after repair: ask the model again, up to `retries` times,
 * with the conversation plus its own invalid answer and one short corrective message, at
 * temperature 0. The server executes the plan (it owns the upstream); this module only decides.
 */

export interface RetryMessage {
  role: 'assistant' | 'user'
  content: string
}

export type RetryPlan =
  | {
      retry: true
      /** 1 for the first retry. */
      attempt: number
      /** Append these to the request's messages. */
      messages: RetryMessage[]
      /** Merge into the request body (OpenAI `temperature`; Ollama `options.temperature`). */
      overrides: { temperature: 0 }
    }
  | { retry: false; error: VeloError }

export interface RetryPolicy {
  /** Retries after the first answer (0 disables). */
  retries: number
}

/** The model's invalid answer as text, so the corrective message can refer to it. */
function answerText(result: RepairResult, original: string | undefined): string {
  if (original && original.trim().length > 0) return original
  return result.problems
    .map((problem) => {
      const args =
        typeof problem.raw.arguments === 'string'
          ? problem.raw.arguments
          : JSON.stringify(problem.raw.arguments ?? {})
      return JSON.stringify({ name: problem.raw.name ?? null, arguments: args })
    })
    .join('\n')
}

export function correctiveMessage(result: RepairResult): string {
  return [
    'Your tool call was not valid:',
    describeProblems(result.problems),
    'Call the tool again with arguments that match its JSON schema exactly. Reply with the tool call only.',
  ].join('\n')
}

/** The error a client gets when retries are used up (or off): what was wrong, and what to do. */
export function toolCallError(result: RepairResult, attempts: number): VeloError {
  const what = result.problems.map((problem) => problem.message).join('; ')
  return new VeloError(
    'VELO_TOOL_CALL_INVALID',
    `the model returned an invalid tool call${attempts > 0 ? ` ${attempts + 1} times` : ''}: ${what}`,
    {
      status: 502,
      suggestion:
        'simplify the tool schema, use a model with native tool support, or enable toolCalls.enforce for this model in velo.yaml',
    },
  )
}

/**
 * Decide after an answer whose calls stay invalid. `attemptsSoFar` counts retries already made;
 * `original` is the model's text (content) when it had any.
 */
export function planToolCallRetry(
  result: RepairResult,
  attemptsSoFar: number,
  policy: RetryPolicy,
  original?: string,
): RetryPlan | undefined {
  if (result.ok) return undefined
  if (attemptsSoFar >= policy.retries) return { retry: false, error: toolCallError(result, attemptsSoFar) }
  return {
    retry: true,
    attempt: attemptsSoFar + 1,
    messages: [
      { role: 'assistant', content: answerText(result, original) },
      { role: 'user', content: correctiveMessage(result) },
    ],
    overrides: { temperature: 0 },
  }
}
