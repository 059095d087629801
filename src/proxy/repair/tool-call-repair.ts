import { type EnforcementTarget, enforcementFields, parseEnforcedOutput } from './enforce.js'
import { repairOllamaChatResponse, repairOpenAIChatResponse } from './formats.js'
import type { RepairOptions } from './repair.js'
import { planToolCallRetry, type RetryPlan } from './retry.js'
import { OllamaToolCallStream, OpenAIToolCallStream } from './stream.js'
import { type RepairResult, type ToolSpec, toolsFromRequest } from './types.js'

/**
 * The tool-call stage as the server uses it: one object built from the `toolCalls:` config section
 * and a metrics callback, with a method per place in the request path.
 *
 *   const repair = new ToolCallRepairer(config.toolCalls, { onEvent })
 *   // before forwarding, for models in toolCalls.enforce.models:
 *   Object.assign(upstreamBody, repair.enforcement('openai', body, model))
 *   // after a complete response:
 *   const { response, results, retry } = repair.openAI(upstreamResponse, body, model, attempt)
 *   // streams:
 *   const assembler = repair.openAIStream(body, model); for each event: send(...assembler.push(event))
 */

/** The `toolCalls:` section of velo.yaml after defaults. */
export interface ToolCallSettings {
  /** Master switch for repair of responses (default true). */
  repair: boolean
  /** Recover calls written as text (default true). */
  recoverFromText: boolean
  /** Validate arguments with the tools' JSON schemas (default true). */
  validate: boolean
  /** Corrective retries for calls that stay invalid (default 1; 0 disables). */
  retries: number
  /** After the retries: answer with an error (default), or pass the invalid calls on as they are. */
  onInvalid: 'error' | 'pass'
  enforce: {
    /** Models whose requests with tools are constrained to valid tool calls; `*` for all. */
    models: string[]
    maxStringLength: number
    maxArrayItems: number
    allowText: boolean
  }
}

export const DEFAULT_TOOL_CALL_SETTINGS: ToolCallSettings = {
  repair: true,
  recoverFromText: true,
  validate: true,
  retries: 1,
  onInvalid: 'error',
  enforce: { models: [], maxStringLength: 0, maxArrayItems: 0, allowText: true },
}

export type ToolCallEvent =
  | { type: 'repaired' | 'recovered' | 'invalid' | 'duplicate' | 'coerced'; model: string; count: number }
  | { type: 'retried'; model: string; attempt: number }
  | { type: 'enforced'; model: string }

export interface ToolCallCallbacks {
  /** Counts for metrics (calls repaired, recovered, invalid, retried, ...). */
  onEvent?: (event: ToolCallEvent) => void
  log?: (level: 'info' | 'warn', message: string) => void
}

export interface ToolCallStats {
  repaired: number
  recovered: number
  invalid: number
  retried: number
  duplicatesDropped: number
  coerced: number
  enforced: number
}

export class ToolCallRepairer {
  readonly settings: ToolCallSettings
  private readonly callbacks: ToolCallCallbacks
  private readonly counters: ToolCallStats = {
    repaired: 0,
    recovered: 0,
    invalid: 0,
    retried: 0,
    duplicatesDropped: 0,
    coerced: 0,
    enforced: 0,
  }

  constructor(settings: Partial<ToolCallSettings> = {}, callbacks: ToolCallCallbacks = {}) {
    this.settings = {
      ...DEFAULT_TOOL_CALL_SETTINGS,
      ...settings,
      enforce: { ...DEFAULT_TOOL_CALL_SETTINGS.enforce, ...settings.enforce },
    }
    this.callbacks = callbacks
  }

  /** Whether requests for this model are constrained to tool calls. */
  enforces(model: string): boolean {
    const models = this.settings.enforce.models
    return models.includes('*') || models.includes(model)
  }

  /** Fields to merge into the upstream body for enforcement, or undefined (model not enforced, no tools). */
  enforcement(target: EnforcementTarget, body: unknown, model: string): Record<string, unknown> | undefined {
    if (!this.enforces(model)) return undefined
    const tools = toolsFromRequest(body)
    if (tools.length === 0) return undefined
    const choice =
      typeof body === 'object' && body !== null ? (body as Record<string, unknown>)['tool_choice'] : undefined
    const fields = enforcementFields(target, tools, choice, this.settings.enforce)
    if (fields) {
      this.counters.enforced++
      this.callbacks.onEvent?.({ type: 'enforced', model })
    }
    return fields
  }

  /** Turn an enforced answer's text into tool calls (then format it like any repaired response). */
  parseEnforced(text: string, body: unknown, model: string): RepairResult {
    const result = parseEnforcedOutput(text, toolsFromRequest(body), this.options())
    this.record(model, result)
    return result
  }

  /**
   * Repair an OpenAI chat completion; `retry` tells the server what to do when calls stay invalid.
   * `enforced`: the request went out with `enforcement()`'s fields, so a text answer is the
   * constrained JSON (parseEnforced), unwrapped to a plain assistant message.
   */
  openAI(
    response: unknown,
    body: unknown,
    model: string,
    attemptsSoFar = 0,
    options: { enforced?: boolean } = {},
  ): { response: unknown; results: RepairResult[]; retry: RetryPlan | undefined } {
    if (!this.settings.repair) return { response, results: [], retry: undefined }
    const tools = toolsFromRequest(body)
    const repaired = repairOpenAIChatResponse(response, tools, {
      ...this.options(),
      keepInvalid: this.settings.onInvalid === 'pass',
      enforced: options.enforced,
    })
    for (const result of repaired.results) this.record(model, result)
    const failed = repaired.results.find((result) => !result.ok)
    return { ...repaired, retry: failed ? this.retry(failed, attemptsSoFar, model) : undefined }
  }

  /** Repair an Ollama /api/chat response (`enforced` as for openAI). */
  ollama(
    response: unknown,
    body: unknown,
    model: string,
    attemptsSoFar = 0,
    options: { enforced?: boolean } = {},
  ): { response: unknown; result: RepairResult | undefined; retry: RetryPlan | undefined } {
    if (!this.settings.repair) return { response, result: undefined, retry: undefined }
    const repaired = repairOllamaChatResponse(response, toolsFromRequest(body), {
      ...this.options(),
      keepInvalid: this.settings.onInvalid === 'pass',
      enforced: options.enforced,
    })
    if (repaired.result) this.record(model, repaired.result)
    const retry =
      repaired.result && !repaired.result.ok ? this.retry(repaired.result, attemptsSoFar, model) : undefined
    return { ...repaired, retry }
  }

  /** A stream assembler for OpenAI SSE events; undefined when repair is off. */
  openAIStream(
    body: unknown,
    model: string,
    options: { deferInvalid?: boolean; enforced?: boolean } = {},
  ): OpenAIToolCallStream | undefined {
    if (!this.settings.repair) return undefined
    return new OpenAIToolCallStream(toolsFromRequest(body), {
      ...this.options(),
      keepInvalid: this.settings.onInvalid === 'pass',
      deferInvalid: options.deferInvalid,
      enforced: options.enforced,
      onResult: (result) => this.record(model, result),
    })
  }

  /** A stream assembler for Ollama NDJSON events; undefined when repair is off. */
  ollamaStream(
    body: unknown,
    model: string,
    options: { deferInvalid?: boolean; enforced?: boolean } = {},
  ): OllamaToolCallStream | undefined {
    if (!this.settings.repair) return undefined
    return new OllamaToolCallStream(toolsFromRequest(body), {
      ...this.options(),
      keepInvalid: this.settings.onInvalid === 'pass',
      deferInvalid: options.deferInvalid,
      enforced: options.enforced,
      onResult: (result) => this.record(model, result),
    })
  }

  stats(): ToolCallStats {
    return { ...this.counters }
  }

  private retry(result: RepairResult, attemptsSoFar: number, model: string): RetryPlan | undefined {
    if (this.settings.onInvalid === 'pass' && attemptsSoFar >= this.settings.retries) return undefined
    const plan = planToolCallRetry(result, attemptsSoFar, { retries: this.settings.retries })
    if (plan?.retry) {
      this.counters.retried++
      this.callbacks.onEvent?.({ type: 'retried', model, attempt: plan.attempt })
    } else if (plan) {
      this.callbacks.log?.('warn', `tool calls: ${plan.error.message}`)
    }
    return plan
  }

  private options(): RepairOptions {
    return { recoverFromText: this.settings.recoverFromText, validate: this.settings.validate }
  }

  private record(model: string, result: RepairResult): void {
    const { counts } = result
    const bump = (type: 'repaired' | 'recovered' | 'invalid' | 'duplicate' | 'coerced', count: number) => {
      if (count > 0) this.callbacks.onEvent?.({ type, model, count })
    }
    const repaired = counts.argumentsRepaired + counts.namesFixed
    this.counters.repaired += repaired
    this.counters.recovered += counts.recovered
    this.counters.invalid += result.problems.length
    this.counters.duplicatesDropped += counts.duplicatesDropped
    this.counters.coerced += counts.coerced
    bump('repaired', repaired)
    bump('recovered', counts.recovered)
    bump('invalid', result.problems.length)
    bump('duplicate', counts.duplicatesDropped)
    bump('coerced', counts.coerced)
  }
}

export function createToolCallRepairer(
  settings: Partial<ToolCallSettings> = {},
  callbacks: ToolCallCallbacks = {},
): ToolCallRepairer {
  return new ToolCallRepairer(settings, callbacks)
}

export type { ToolSpec }
