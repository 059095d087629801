import { jsonrepair } from 'jsonrepair'
import { isRecord, type RawToolCall } from './types.js'

/**
 * Recover tool calls that a model wrote as text, when the upstream did not parse them (a chat
 * template without tool support, a parser that does not know the model's format, a model that
 * answered in the wrong format). Recognised, in this order:
 *
 *  - Hermes / Qwen 2.5: `<tool_call>{"name": ..., "arguments": ...}</tool_call>` (closing tag optional)
 *  - Qwen3-Coder XML: `<tool_call><function=NAME><parameter=KEY>VALUE</parameter></function></tool_call>`
 *  - Llama 3.1 custom functions and Functionary: `<function=NAME>{...}</function>`
 *  - Mistral: `[TOOL_CALLS][{"name": ..., "arguments": ...}]` and `[TOOL_CALLS]NAME[ARGS]{...}`
 *  - Llama 3.x JSON: `<|python_tag|>{"name": ..., "parameters": ...}` (several separated by `;`)
 *  - DeepSeek V3 / R1 / V3.1: `<｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME ```json {...}``` <｜tool▁call▁end｜>`
 *  - FireFunction: `functools[{...}]`
 *  - Markdown fences (json, tool_call, tool_code, python) holding JSON or Python-style calls
 *  - A bare JSON object or array, alone or after a short preamble (`{"tool_calls": [...]}`,
 *    `{"function": {...}}`, `{"tool": ..., "tool_input": ...}`, `{"action": ..., "action_input": ...}`,
 *    OpenAI's `{"tool_uses": [{"recipient_name": "functions.NAME", "parameters": ...}]}`, ...)
 *  - Llama 3.2 / Gemma Python-style calls: `[get_weather(city="Paris"), ...]`
 *
 * Explicit markers (tags, `[TOOL_CALLS]`) are trusted whatever the name; bare JSON and Python-style
 * text only count when they name a declared tool, so an ordinary JSON answer is never taken for a call.
 */

export interface Extraction {
  calls: RawToolCall[]
  /** The text with the calls (and their markers) taken out, trimmed. */
  remaining: string
  format: string
}

type Known = (name: string) => boolean

interface Span {
  start: number
  end: number
}

/** JSON if it parses, else what jsonrepair makes of it, else undefined. */
export function looseJson(text: string): unknown {
  const trimmed = text.trim()
  if (trimmed.length === 0) return undefined
  try {
    return JSON.parse(trimmed)
  } catch {
    try {
      return JSON.parse(jsonrepair(trimmed))
    } catch {
      return undefined
    }
  }
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' && value.trim().length > 0 ? value.trim() : undefined
}

const NAME_KEYS = [
  'name',
  'tool',
  'tool_name',
  'function_name',
  'function',
  'action',
  'recipient_name',
  'api',
]
const ARGUMENT_KEYS = [
  'arguments',
  'parameters',
  'args',
  'input',
  'tool_input',
  'action_input',
  'params',
  'kwargs',
  'argument',
]
const META_KEYS = new Set(['id', 'type', 'index', 'call_id'])

function callFromObject(object: Record<string, unknown>, known: Known): RawToolCall | undefined {
  const fn = object['function'] ?? object['function_call']
  if (isRecord(fn)) {
    const name = str(fn['name'])
    if (!name) return undefined
    return { id: str(object['id']), name, arguments: fn['arguments'] ?? fn['parameters'] ?? fn['args'] }
  }
  let name: string | undefined
  let nameKey: string | undefined
  for (const key of NAME_KEYS) {
    name = str(object[key])
    if (name) {
      nameKey = key
      break
    }
  }
  if (!name || !nameKey) return undefined
  const argumentKey = ARGUMENT_KEYS.find((key) => key in object)
  if (argumentKey) return { id: str(object['id']), name, arguments: object[argumentKey] }
  // Flattened: {"name": "get_weather", "city": "Paris"}; only for a declared tool.
  if (!known(name)) return undefined
  const rest: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(object)) {
    if (key !== nameKey && !META_KEYS.has(key)) rest[key] = value
  }
  return { id: str(object['id']), name, arguments: rest }
}

/** Tool calls described by a parsed JSON value, or undefined when it does not look like calls. */
export function callsFromJson(value: unknown, known: Known): RawToolCall[] | undefined {
  if (Array.isArray(value)) {
    if (value.length === 0) return undefined
    const calls: RawToolCall[] = []
    for (const item of value) {
      const inner = callsFromJson(item, known)
      if (!inner) return undefined
      calls.push(...inner)
    }
    return calls
  }
  if (!isRecord(value)) return undefined
  for (const key of ['tool_calls', 'tool_uses', 'function_calls', 'calls']) {
    const list = value[key]
    if (Array.isArray(list) || isRecord(list)) return callsFromJson(list, known)
  }
  const call = callFromObject(value, known)
  return call ? [call] : undefined
}

/** End (exclusive) of the JSON value starting at `start`, or text.length when it is cut off. */
export function scanJson(text: string, start: number): number {
  let depth = 0
  let quote: string | undefined
  for (let i = start; i < text.length; i++) {
    const ch = text[i]
    if (quote) {
      if (ch === '\\') i++
      else if (ch === quote) quote = undefined
      continue
    }
    if (ch === '"' || ch === "'") quote = ch
    else if (ch === '{' || ch === '[') depth++
    else if (ch === '}' || ch === ']') {
      depth--
      if (depth === 0) return i + 1
    }
  }
  return text.length
}

/** Split on a separator at bracket depth 0, outside quotes. */
function splitTopLevel(text: string, separator: string): string[] {
  const parts: string[] = []
  let depth = 0
  let quote: string | undefined
  let from = 0
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]
    if (quote) {
      if (ch === '\\') i++
      else if (ch === quote) quote = undefined
      continue
    }
    if (ch === '"' || ch === "'") quote = ch
    else if (ch === '(' || ch === '[' || ch === '{') depth++
    else if (ch === ')' || ch === ']' || ch === '}') depth--
    else if (ch === separator && depth === 0) {
      parts.push(text.slice(from, i))
      from = i + 1
    }
  }
  parts.push(text.slice(from))
  return parts
}

const PY_CALL = /^([A-Za-z_][\w.-]*)\s*\(([\s\S]*)\)$/

/** `get_weather(city="Paris", days=3)` or a list of them, keyword arguments with Python literals. */
export function parsePythonCalls(text: string, known: Known): RawToolCall[] | undefined {
  let body = text.trim()
  if (body.startsWith('[') && body.endsWith(']')) body = body.slice(1, -1).trim()
  if (body.length === 0) return undefined
  const calls: RawToolCall[] = []
  for (const part of splitTopLevel(body, ',')) {
    const match = PY_CALL.exec(part.trim())
    if (!match) return undefined
    const name = match[1] ?? ''
    if (!known(name)) return undefined
    const args: Record<string, unknown> = {}
    const inner = (match[2] ?? '').trim()
    if (inner.length > 0) {
      for (const pair of splitTopLevel(inner, ',')) {
        if (pair.trim().length === 0) continue
        const eq = pair.indexOf('=')
        if (eq <= 0) return undefined
        const key = pair.slice(0, eq).trim()
        if (!/^[A-Za-z_]\w*$/.test(key)) return undefined
        const literal = pair.slice(eq + 1).trim()
        const value = looseJson(literal)
        if (value === undefined) return undefined
        args[key] = value
      }
    }
    calls.push({ name, arguments: args })
  }
  return calls
}

/** Qwen3-Coder's XML parameters: `<parameter=city>Paris</parameter>`. */
function xmlParameters(body: string): Record<string, unknown> | undefined {
  const args: Record<string, unknown> = {}
  let found = false
  for (const match of body.matchAll(
    /<parameter=([^>\s]+)>\n?([\s\S]*?)\n?(?:<\/parameter>|(?=<parameter=)|$)/g,
  )) {
    found = true
    const raw = match[2] ?? ''
    let value: unknown = raw
    try {
      const parsed: unknown = JSON.parse(raw)
      if (typeof parsed !== 'string') value = parsed
    } catch {
      // Plain text value.
    }
    args[match[1] ?? ''] = value
  }
  return found ? args : undefined
}

/** Inside an explicit tag the intent is clear: any name counts (an unknown one is reported later). */
function callsInTagBody(body: string): RawToolCall[] | undefined {
  const fn = /<function=([^>\s]+)>([\s\S]*?)(?:<\/function>|$)/.exec(body)
  if (fn) {
    const inner = (fn[2] ?? '').trim()
    const args = xmlParameters(inner) ?? (inner.length > 0 ? inner : {})
    return [{ name: fn[1], arguments: args }]
  }
  return callsFromJson(looseJson(body), () => true) ?? parsePythonCalls(body, () => true)
}

type Detector = (text: string, known: Known) => { calls: RawToolCall[]; spans: Span[] } | undefined

const hermes: Detector = (text) => {
  const calls: RawToolCall[] = []
  const spans: Span[] = []
  for (const match of text.matchAll(/<tool_calls?>([\s\S]*?)(?:<\/tool_calls?>|$)/g)) {
    const found = callsInTagBody(match[1] ?? '')
    if (!found) continue
    calls.push(...found)
    spans.push({ start: match.index ?? 0, end: (match.index ?? 0) + match[0].length })
  }
  return calls.length > 0 ? { calls, spans } : undefined
}

const functionTag: Detector = (text) => {
  const calls: RawToolCall[] = []
  const spans: Span[] = []
  for (const match of text.matchAll(/<function=([^>\s]+)>([\s\S]*?)(?:<\/function>|$)/g)) {
    const inner = (match[2] ?? '').trim()
    calls.push({ name: match[1], arguments: xmlParameters(inner) ?? (inner.length > 0 ? inner : {}) })
    spans.push({ start: match.index ?? 0, end: (match.index ?? 0) + match[0].length })
  }
  return calls.length > 0 ? { calls, spans } : undefined
}

const MISTRAL = '[TOOL_CALLS]'
const mistral: Detector = (text) => {
  const start = text.indexOf(MISTRAL)
  if (start < 0) return undefined
  const calls: RawToolCall[] = []
  let cursor = start
  while (cursor < text.length) {
    if (text.startsWith(MISTRAL, cursor)) cursor += MISTRAL.length
    while (cursor < text.length && /\s/.test(text[cursor] ?? '')) cursor++
    const ch = text[cursor]
    if (ch === '[' || ch === '{') {
      const end = scanJson(text, cursor)
      const found = callsFromJson(looseJson(text.slice(cursor, end)), () => true)
      if (!found) return undefined
      calls.push(...found)
      cursor = end
    } else {
      // v11+: NAME[ARGS]{...} or NAME[CALL_ID]id[ARGS]{...}
      const match = /^([^[\s]+)(?:\[CALL_ID\]([^[]*))?\[ARGS\]/.exec(text.slice(cursor))
      if (!match) break
      cursor += match[0].length
      while (cursor < text.length && /\s/.test(text[cursor] ?? '')) cursor++
      const end = text[cursor] === '{' ? scanJson(text, cursor) : text.indexOf(MISTRAL, cursor)
      const stop = end < 0 ? text.length : end
      calls.push({ name: match[1], id: str(match[2]), arguments: text.slice(cursor, stop) })
      cursor = stop
    }
    while (cursor < text.length && /\s/.test(text[cursor] ?? '')) cursor++
    if (!text.startsWith(MISTRAL, cursor)) break
  }
  return calls.length > 0 ? { calls, spans: [{ start, end: cursor }] } : undefined
}

const PYTHON_TAG = '<|python_tag|>'
const llamaPythonTag: Detector = (text, known) => {
  const start = text.indexOf(PYTHON_TAG)
  if (start < 0) return undefined
  let body = text.slice(start + PYTHON_TAG.length)
  const stop = body.search(/<\|eom_id\|>|<\|eot_id\|>/)
  if (stop >= 0) body = body.slice(0, stop)
  const calls: RawToolCall[] = []
  for (const part of splitTopLevel(body, ';')) {
    if (part.trim().length === 0) continue
    const found = callsFromJson(looseJson(part), () => true) ?? parsePythonCalls(part, known)
    if (!found) return undefined
    calls.push(...found)
  }
  return calls.length > 0 ? { calls, spans: [{ start, end: text.length }] } : undefined
}

const DS_CALL = /<｜tool▁call▁begin｜>([\s\S]*?)(?:<｜tool▁call▁end｜>|$)/g
const deepseek: Detector = (text) => {
  if (!text.includes('<｜tool▁call▁begin｜>')) return undefined
  const calls: RawToolCall[] = []
  for (const match of text.matchAll(DS_CALL)) {
    const inner = match[1] ?? ''
    const sep = inner.indexOf('<｜tool▁sep｜>')
    if (sep < 0) continue
    let name = inner.slice(0, sep).trim()
    let args = inner.slice(sep + '<｜tool▁sep｜>'.length)
    // V3 / R1: "function<｜tool▁sep｜>NAME\n```json\n{...}\n```"
    if (name === 'function') {
      const newline = args.indexOf('\n')
      name = (newline < 0 ? args : args.slice(0, newline)).trim()
      args = newline < 0 ? '' : args.slice(newline + 1)
    }
    args = args.replace(/^\s*```(?:json)?\s*/, '').replace(/\s*```\s*$/, '')
    calls.push({ name, arguments: args })
  }
  if (calls.length === 0) return undefined
  const begin = text.indexOf('<｜tool▁calls▁begin｜>')
  const first = begin >= 0 ? begin : text.indexOf('<｜tool▁call▁begin｜>')
  const endMarker = text.lastIndexOf('<｜tool▁calls▁end｜>')
  const end = endMarker >= 0 ? endMarker + '<｜tool▁calls▁end｜>'.length : text.length
  return { calls, spans: [{ start: first, end }] }
}

const functools: Detector = (text) => {
  const start = text.indexOf('functools[')
  if (start < 0) return undefined
  const open = start + 'functools'.length
  const end = scanJson(text, open)
  const calls = callsFromJson(looseJson(text.slice(open, end)), () => true)
  return calls ? { calls, spans: [{ start, end }] } : undefined
}

const fenced: Detector = (text, known) => {
  const calls: RawToolCall[] = []
  const spans: Span[] = []
  for (const match of text.matchAll(/```[ \t]*([\w-]*)[ \t]*\n?([\s\S]*?)(?:```|$)/g)) {
    const body = match[2] ?? ''
    const found = callsFromJson(looseJson(body), known) ?? parsePythonCalls(body, known)
    if (!found?.every((call) => call.name !== undefined && known(call.name))) continue
    calls.push(...found)
    spans.push({ start: match.index ?? 0, end: (match.index ?? 0) + match[0].length })
  }
  return calls.length > 0 ? { calls, spans } : undefined
}

/** A JSON object or array naming a declared tool: the whole text, or after a short preamble. */
const bareJson: Detector = (text, known) => {
  let tried = 0
  for (let i = 0; i < text.length && tried < 20; i++) {
    const ch = text[i]
    if (ch !== '{' && ch !== '[') continue
    tried++
    const end = scanJson(text, i)
    const found = callsFromJson(looseJson(text.slice(i, end)), known)
    if (found?.every((call) => call.name !== undefined && known(call.name))) {
      return { calls: found, spans: [{ start: i, end }] }
    }
    if (end > i + 1) i = end - 1
  }
  return undefined
}

const pythonic: Detector = (text, known) => {
  const calls = parsePythonCalls(text, known)
  return calls ? { calls, spans: [{ start: 0, end: text.length }] } : undefined
}

const DETECTORS: [string, Detector][] = [
  ['hermes', hermes],
  ['mistral', mistral],
  ['deepseek', deepseek],
  ['llama3-python-tag', llamaPythonTag],
  ['function-tag', functionTag],
  ['functools', functools],
  ['fenced', fenced],
  ['json', bareJson],
  ['pythonic', pythonic],
]

/** Leftover markers that mean nothing once the calls are out. */
const MARKERS = /<\|python_tag\|>|<\|eom_id\|>|<\|eot_id\|>|<｜tool▁calls▁(?:begin|end)｜>|<\/?tool_calls?>/g

export function extractToolCalls(text: string, known: Known): Extraction | undefined {
  if (text.trim().length === 0) return undefined
  for (const [format, detect] of DETECTORS) {
    const found = detect(text, known)
    if (!found || found.calls.length === 0) continue
    let remaining = ''
    let cursor = 0
    for (const span of [...found.spans].sort((a, b) => a.start - b.start)) {
      remaining += text.slice(cursor, span.start)
      cursor = Math.max(cursor, span.end)
    }
    remaining += text.slice(cursor)
    return { calls: found.calls, remaining: remaining.replace(MARKERS, '').trim(), format }
  }
  return undefined
}

/**
 * Where in streamed text a tool call may begin: the first marker, or the start when the message opens
 * with `{`, `[` or a fence. The streaming assembler holds text from there on until the end.
 */
export const STREAM_MARKERS = [
  '<tool_call>',
  '<tool_calls>',
  '<function=',
  MISTRAL,
  PYTHON_TAG,
  '<｜tool▁calls▁begin｜>',
  '<｜tool▁call▁begin｜>',
  'functools[',
  '```',
  // A JSON object in the middle of text may be a call after a preamble ("Sure! {\"name\": ...").
  '{"',
]
