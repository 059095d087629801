import { parseEnforcedOutput } from './enforce.js'
import { STREAM_MARKERS } from './extract.js'
import { type FormatRepairOptions, ollamaToolCalls, openAIToolCalls, rawFromOllama } from './formats.js'
import { newCallId, repairToolCalls } from './repair.js'
import { isRecord, type RawToolCall, type RepairResult, type ToolSpec } from './types.js'

/**
 * Tool-call repair for streams. The assemblers take the upstream's parsed stream events one by one
 * (OpenAI `chat.completion.chunk` objects, Ollama NDJSON objects) and return the events to send on.
 *
 * - Tool-call deltas are collected, not forwarded; when the choice finishes, the assembled calls are
 *   repaired and sent as complete, valid deltas (one per call, `arguments` whole), followed by the
 *   finish event (`finish_reason: "tool_calls"`). Clients accumulate deltas, so complete ones are
 *   valid OpenAI; what they lose is seeing arguments grow token by token.
 * - Text streams through as it comes, except from the point where a tool call written as text may
 *   begin (a `<tool_call>` tag, `[TOOL_CALLS]`, a fence, or a message that opens with `{`, `[` or
 *   `tool_name(`): from there the text is held to the end, where the calls are recovered from it, or
 *   it is sent as text after all. Only when the request declares tools.
 * - With `deferInvalid`, a finish whose calls stay invalid returns nothing until the server decides
 *   (`awaitingDecision`, then `resolve()` to send as is, or `resolve(result)` with the result of a
 *   retry): nothing of the calls has reached the client yet, so a retry is still possible.
 */

export interface StreamRepairOptions extends FormatRepairOptions {
  /** Hold back a finish with invalid calls until `resolve()` (for retries). */
  deferInvalid?: boolean
  /** Called with each choice's result when it finishes. */
  onResult?: (result: RepairResult) => void
}

/** Passes text through until a possible tool call starts, then holds everything after it. */
export class TextGate {
  private pending = ''
  private holding = false
  private emitted = false
  private readonly starts: string[]

  constructor(toolNames: readonly string[]) {
    this.starts = ['{', '[', ...toolNames.map((name) => `${name}(`)]
  }

  get isHolding(): boolean {
    return this.holding
  }

  /** Text that is safe to send now. */
  push(text: string): string {
    this.pending += text
    if (this.holding) return ''
    if (!this.emitted) {
      const start = this.pending.trimStart()
      if (start.length === 0) return ''
      if (this.starts.some((candidate) => start.startsWith(candidate))) {
        this.holding = true
        return ''
      }
      // Could still become one of the openings: wait for more text.
      if (this.starts.some((candidate) => candidate.startsWith(start))) return ''
    }
    let cut = -1
    for (const marker of STREAM_MARKERS) {
      const at = this.pending.indexOf(marker)
      if (at >= 0 && (cut < 0 || at < cut)) cut = at
    }
    let out: string
    if (cut >= 0) {
      this.holding = true
      out = this.pending.slice(0, cut)
      this.pending = this.pending.slice(cut)
    } else {
      // Keep back a tail that may be the beginning of a marker split across deltas.
      let keep = 0
      for (const marker of STREAM_MARKERS) {
        for (let k = Math.min(marker.length - 1, this.pending.length); k > keep; k--) {
          if (this.pending.endsWith(marker.slice(0, k))) {
            keep = k
            break
          }
        }
      }
      out = this.pending.slice(0, this.pending.length - keep)
      this.pending = this.pending.slice(this.pending.length - keep)
    }
    if (out.length > 0) this.emitted = true
    return out
  }

  /** Everything not sent yet (at the end of the message). */
  take(): string {
    const rest = this.pending
    this.pending = ''
    return rest
  }
}

interface PartialCall {
  id: string | undefined
  name: string
  arguments: string
  /** Ollama sends arguments as an object. */
  object: unknown
}

interface ChoiceState {
  gate: TextGate | undefined
  calls: Map<number, PartialCall>
  finished: boolean
}

function toRaw(calls: Map<number, PartialCall>): RawToolCall[] {
  return [...calls.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([, call]) => ({
      id: call.id,
      name: call.name.length > 0 ? call.name : undefined,
      arguments: call.object !== undefined ? call.object : call.arguments,
    }))
}

abstract class ToolCallStream {
  readonly results: RepairResult[] = []
  protected readonly tools: readonly ToolSpec[]
  protected readonly options: StreamRepairOptions
  private deferred: { result: RepairResult; finish: (result: RepairResult) => unknown[] } | undefined

  constructor(tools: readonly ToolSpec[], options: StreamRepairOptions = {}) {
    this.tools = tools
    this.options = options
  }

  /** A finish with invalid calls waits for `resolve()` (only with `deferInvalid`). */
  get awaitingDecision(): RepairResult | undefined {
    return this.deferred?.result
  }

  /** Send the deferred finish: as repaired, or with the calls of another result (a retry's). */
  resolve(replacement?: RepairResult): unknown[] {
    const deferred = this.deferred
    if (!deferred) return []
    this.deferred = undefined
    return deferred.finish(replacement ?? deferred.result)
  }

  protected newGate(): TextGate | undefined {
    if (this.tools.length === 0) return undefined
    // An enforced answer is always JSON to read at the end, whatever recoverFromText says.
    if (this.options.recoverFromText === false && !this.options.enforced) return undefined
    return new TextGate(this.tools.map((tool) => tool.name))
  }

  /** Repair a finished choice and build its closing events, or defer them. */
  protected finishChoice(
    state: ChoiceState,
    build: (result: RepairResult, text: string) => unknown[],
  ): unknown[] {
    state.finished = true
    const held = state.gate?.take() ?? ''
    const raw = toRaw(state.calls)
    if (raw.length === 0 && held.length === 0) return build(emptyResult(), '')
    const result =
      this.options.enforced && raw.length === 0
        ? parseEnforcedOutput(held, this.tools, this.options)
        : raw.length > 0 || this.tools.length > 0
          ? repairToolCalls(
              { content: raw.length > 0 ? null : held, toolCalls: raw },
              this.tools,
              this.options,
            )
          : emptyResult()
    // Text held while native calls came: it was text after all.
    const text = raw.length > 0 ? held : (result.content ?? '')
    this.results.push(result)
    this.options.onResult?.(result)
    if (!result.ok && this.options.deferInvalid) {
      this.deferred = { result, finish: (final) => build(final, text) }
      return []
    }
    return build(result, text)
  }
}

function emptyResult(): RepairResult {
  return {
    content: null,
    calls: [],
    problems: [],
    counts: {
      argumentsRepaired: 0,
      recovered: 0,
      duplicatesDropped: 0,
      idsAssigned: 0,
      coerced: 0,
      namesFixed: 0,
    },
    recoveredFrom: undefined,
    changed: false,
    ok: true,
  }
}

/** OpenAI `chat.completion.chunk` events in, repaired events out. */
export class OpenAIToolCallStream extends ToolCallStream {
  private readonly choices = new Map<number, ChoiceState>()
  private base: Record<string, unknown> = {}

  push(event: unknown): unknown[] {
    if (!isRecord(event) || !Array.isArray(event['choices']) || event['choices'].length === 0) return [event]
    this.base = {}
    for (const key of ['id', 'object', 'created', 'model', 'system_fingerprint']) {
      if (event[key] !== undefined) this.base[key] = event[key]
    }
    const out: unknown[] = []
    const through: unknown[] = []
    const closing: unknown[] = []
    let finishing = false
    for (const choice of event['choices']) {
      if (!isRecord(choice)) {
        through.push(choice)
        continue
      }
      const index = typeof choice['index'] === 'number' ? choice['index'] : 0
      const state = this.state(index)
      const delta: Record<string, unknown> = isRecord(choice['delta']) ? { ...choice['delta'] } : {}
      if (Array.isArray(delta['tool_calls'])) {
        for (const part of delta['tool_calls']) this.collect(state, part)
        delete delta['tool_calls']
      }
      if (state.gate && typeof delta['content'] === 'string' && delta['content'].length > 0) {
        const safe = state.gate.push(delta['content'])
        if (safe.length > 0) delta['content'] = safe
        else delete delta['content']
      }
      const finish = choice['finish_reason']
      const { finish_reason: _finish, delta: _delta, ...rest } = choice
      if (Object.keys(delta).length > 0) through.push({ ...rest, index, delta, finish_reason: null })
      if (finish !== null && finish !== undefined) {
        finishing = true
        const extra: Record<string, unknown> = {}
        for (const [key, value] of Object.entries(event)) {
          if (!(key in this.base) && key !== 'choices') extra[key] = value
        }
        closing.push(
          ...this.finishChoice(state, (result, text) => this.closing(index, result, text, finish, extra)),
        )
      }
    }
    // Top-level extras (usage, timings) travel with the closing event when this event finishes a choice.
    if (through.length > 0)
      out.push(finishing ? { ...this.base, choices: through } : { ...event, choices: through })
    out.push(...closing)
    return out
  }

  /** The upstream ended (`[DONE]` or closed) without finishing some choices: send what is held. */
  end(): unknown[] {
    const out: unknown[] = []
    for (const [index, state] of this.choices) {
      if (state.finished) continue
      out.push(
        ...this.finishChoice(state, (result, text) => this.closing(index, result, text, undefined, {})),
      )
    }
    return out
  }

  private state(index: number): ChoiceState {
    let state = this.choices.get(index)
    if (!state) {
      state = { gate: this.newGate(), calls: new Map(), finished: false }
      this.choices.set(index, state)
    }
    return state
  }

  private collect(state: ChoiceState, part: unknown): void {
    if (!isRecord(part)) return
    const index = typeof part['index'] === 'number' ? part['index'] : state.calls.size
    let call = state.calls.get(index)
    if (!call) {
      call = { id: undefined, name: '', arguments: '', object: undefined }
      state.calls.set(index, call)
    }
    if (typeof part['id'] === 'string' && part['id'].length > 0 && call.id === undefined) call.id = part['id']
    const fn = isRecord(part['function']) ? part['function'] : {}
    if (typeof fn['name'] === 'string') call.name += fn['name']
    if (typeof fn['arguments'] === 'string') call.arguments += fn['arguments']
    else if (isRecord(fn['arguments'])) call.object = fn['arguments']
  }

  private chunk(
    index: number,
    delta: Record<string, unknown>,
    finish: unknown,
    extra: Record<string, unknown> = {},
  ) {
    return { ...this.base, choices: [{ index, delta, finish_reason: finish ?? null }], ...extra }
  }

  private closing(
    index: number,
    result: RepairResult,
    text: string,
    finish: unknown,
    extra: Record<string, unknown>,
  ): unknown[] {
    const out: unknown[] = []
    if (text.length > 0) out.push(this.chunk(index, { content: text }, null))
    const calls = openAIToolCalls(result.calls)
    if (this.options.keepInvalid) {
      for (const problem of result.problems) {
        calls.push({
          id: problem.raw.id ?? newCallId(),
          type: 'function',
          function: {
            name: problem.raw.name ?? '',
            arguments:
              typeof problem.raw.arguments === 'string'
                ? problem.raw.arguments
                : JSON.stringify(problem.raw.arguments ?? {}),
          },
        })
      }
    }
    calls.forEach((call, i) => {
      out.push(this.chunk(index, { tool_calls: [{ index: i, ...call }] }, null))
    })
    if (finish !== undefined) {
      const reason =
        calls.length > 0 && finish !== 'content_filter'
          ? 'tool_calls'
          : finish === 'tool_calls'
            ? 'stop'
            : finish
      out.push(this.chunk(index, {}, reason, extra))
    }
    return out
  }
}

/** Ollama /api/chat NDJSON events in, repaired events out. */
export class OllamaToolCallStream extends ToolCallStream {
  private readonly state: ChoiceState = { gate: undefined, calls: new Map(), finished: false }
  private started = false

  push(event: unknown): unknown[] {
    if (!isRecord(event)) return [event]
    if (!this.started) {
      this.state.gate = this.newGate()
      this.started = true
    }
    const out: unknown[] = []
    const message = isRecord(event['message']) ? { ...event['message'] } : undefined
    let forward = true
    if (message) {
      const calls = rawFromOllama(message['tool_calls'])
      if (calls.length > 0) {
        for (const call of calls) {
          this.state.calls.set(this.state.calls.size, {
            id: call.id,
            name: call.name ?? '',
            arguments: typeof call.arguments === 'string' ? call.arguments : '',
            object: typeof call.arguments === 'string' ? undefined : call.arguments,
          })
        }
        delete message['tool_calls']
      }
      if (this.state.gate && typeof message['content'] === 'string' && message['content'].length > 0) {
        message['content'] = this.state.gate.push(message['content'])
      }
      const empty =
        (message['content'] === undefined || message['content'] === '') &&
        (message['thinking'] === undefined || message['thinking'] === '') &&
        message['images'] === undefined
      if (empty && event['done'] !== true) forward = false
    }
    if (event['done'] === true) {
      const template = { model: event['model'], created_at: event['created_at'] }
      out.push(
        ...this.finishChoice(this.state, (result, text) => {
          const closing: unknown[] = []
          if (text.length > 0)
            closing.push({ ...template, message: { role: 'assistant', content: text }, done: false })
          const calls: unknown[] = ollamaToolCalls(result.calls)
          if (this.options.keepInvalid) {
            for (const problem of result.problems) {
              calls.push({ function: { name: problem.raw.name, arguments: problem.raw.arguments } })
            }
          }
          if (calls.length > 0) {
            closing.push({
              ...template,
              message: { role: 'assistant', content: '', tool_calls: calls },
              done: false,
            })
          }
          closing.push(message ? { ...event, message } : event)
          return closing
        }),
      )
      return out
    }
    if (forward) out.push(message ? { ...event, message } : event)
    return out
  }

  /** The upstream closed without a `done` event: send what is held. */
  end(): unknown[] {
    if (this.state.finished || !this.started) return []
    return this.finishChoice(this.state, (result, text) => {
      const closing: unknown[] = []
      if (text.length > 0) closing.push({ message: { role: 'assistant', content: text }, done: false })
      if (result.calls.length > 0) {
        closing.push({
          message: { role: 'assistant', content: '', tool_calls: ollamaToolCalls(result.calls) },
          done: false,
        })
      }
      return closing
    })
  }
}
