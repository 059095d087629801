import { jsonrepair } from 'jsonrepair'
import { isRecord } from './types.js'

/**
 * Turn whatever a model wrote as a tool call's arguments into an object.
 *
 * Valid JSON objects and objects (Ollama) pass untouched. Everything else is cleaned up and goes
 * through `jsonrepair`, which fixes what models actually get wrong: trailing commas, single quotes,
 * unquoted keys, Python literals (True, False, None), comments, markdown fences, and objects cut off
 * after a complete value. Before that, velo fixes what jsonrepair would get wrong or give up on:
 *  - a JSON string that holds JSON (double encoding) is unwrapped;
 *  - `\n`, `\t` and `\"` written outside strings (over-escaped output) become what they stand for;
 *  - invalid escapes inside strings (`C:\work`, a regex `\d+`) keep their backslash instead of
 *    losing it;
 *  - redundant outer braces (`{{...}}`) and text after the object are dropped.
 * It refuses, on purpose, to complete a value that was cut off inside a string (max_tokens reached
 * mid-argument): closing the string would make a shorter value that may mean something else
 * (`rm -rf /tmp/build` cut to `rm -rf /`), so that is reported instead.
 */
export type ParsedArguments =
  | { ok: true; value: Record<string, unknown>; repaired: boolean }
  | { ok: false; error: string }

const FENCE = /^```[a-zA-Z_-]*\s*\n?([\s\S]*?)\n?```\s*$/
const VALID_ESCAPES = new Set(['"', '\\', '/', 'b', 'f', 'n', 'r', 't', 'u'])

function describe(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'string') {
    return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value)}`
  }
  return typeof value
}

/**
 * Fix escapes: outside strings `\n`, `\r`, `\t` are whitespace and `\"` is a quote; inside strings an
 * escape JSON does not know keeps its backslash (doubled). Returns the text and whether it ended
 * inside a string (cut off).
 */
function fixEscapes(text: string): { text: string; insideString: boolean } {
  let out = ''
  let inString = false
  // A string opened by an over-escaped quote (\") is closed by one too.
  let openedByEscape = false
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] ?? ''
    if (inString) {
      if (ch === '\\') {
        const next = text[i + 1]
        if (next === undefined) break
        if (next === '"' && openedByEscape) {
          out += '"'
          inString = false
          i++
          continue
        }
        if (next === 'u' && !/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) out += '\\\\'
        else if (VALID_ESCAPES.has(next)) out += `\\${next}`
        else out += `\\\\${next}`
        i++
        continue
      }
      if (ch === '"') inString = false
      out += ch
      continue
    }
    if (ch === '\\') {
      const next = text[i + 1]
      if (next === 'n' || next === 'r' || next === 't') {
        out += ' '
        i++
        continue
      }
      if (next === '"') {
        // Over-escaped: {"query": \"foo\"} — the quote opens a string that the next \" closes.
        out += '"'
        inString = true
        openedByEscape = true
        i++
        continue
      }
    }
    if (ch === '"') {
      inString = true
      openedByEscape = false
    }
    out += ch
  }
  return { text: out, insideString: inString }
}

/** End (exclusive) of the JSON value starting at `start` (double-quoted strings), or -1 if cut off. */
function valueEnd(text: string, start: number): number {
  let depth = 0
  let inString = false
  for (let i = start; i < text.length; i++) {
    const ch = text[i]
    if (inString) {
      if (ch === '\\') i++
      else if (ch === '"') inString = false
      continue
    }
    if (ch === '"') inString = true
    else if (ch === '{' || ch === '[') depth++
    else if (ch === '}' || ch === ']') {
      depth--
      if (depth === 0) return i + 1
    }
  }
  return -1
}

/**
 * Several JSON objects written one after the other (`{"city":"Paris"}{"city":"Rome"}`): a model that
 * meant parallel calls to one tool. Returns the objects' texts, or undefined when it is not that.
 */
export function splitConcatenatedObjects(raw: unknown): string[] | undefined {
  if (typeof raw !== 'string') return undefined
  const text = raw.trim()
  if (!text.startsWith('{')) return undefined
  const parts: string[] = []
  let cursor = 0
  while (cursor < text.length) {
    const end = valueEnd(text, cursor)
    if (end < 0) return undefined
    const part = text.slice(cursor, end)
    try {
      if (!isRecord(JSON.parse(part))) return undefined
    } catch {
      return undefined
    }
    parts.push(part)
    cursor = end
    while (cursor < text.length && /[\s,;]/.test(text[cursor] ?? '')) cursor++
    if (cursor < text.length && text[cursor] !== '{') return undefined
  }
  return parts.length > 1 ? parts : undefined
}

function parseRepaired(text: string): unknown {
  return JSON.parse(jsonrepair(text))
}

export function parseArguments(raw: unknown): ParsedArguments {
  if (raw === undefined || raw === null) return { ok: true, value: {}, repaired: false }
  if (isRecord(raw)) return { ok: true, value: raw, repaired: false }
  if (typeof raw !== 'string') {
    return { ok: false, error: `arguments must be a JSON object, got ${describe(raw)}` }
  }
  const text = raw.trim()
  if (text.length === 0) return { ok: true, value: {}, repaired: false }
  try {
    const value: unknown = JSON.parse(text)
    if (isRecord(value)) return { ok: true, value, repaired: false }
    if (typeof value === 'string') {
      // Double-encoded: "{\"city\": \"Paris\"}"
      const inner = parseArguments(value)
      if (inner.ok) return { ok: true, value: inner.value, repaired: true }
    }
    return { ok: false, error: `arguments must be a JSON object, got ${describe(value)}` }
  } catch {
    // Not valid JSON: repair below.
  }

  let candidate = FENCE.exec(text)?.[1]?.trim() ?? text
  const escaped = fixEscapes(candidate)
  if (escaped.insideString) {
    return {
      ok: false,
      error:
        'arguments end inside a string value (cut off, max_tokens?); not completed, since a shortened value could change its meaning',
    }
  }
  candidate = escaped.text.trim()
  // {{...}}: one layer of braces too many (it grows when a model "fixes" a rejected call).
  while (/^\{\s*\{/.test(candidate) && /\}\s*\}$/.test(candidate)) {
    const inner = candidate.replace(/^\{\s*/, '').replace(/\s*\}$/, '')
    if (valueEnd(inner, 0) !== inner.length) break
    candidate = inner
  }
  // Text after the object ("... } I hope this helps").
  if (candidate.startsWith('{')) {
    const end = valueEnd(candidate, 0)
    if (end > 0 && end < candidate.length && !/^[\s,]*\{/.test(candidate.slice(end)))
      candidate = candidate.slice(0, end)
  }
  try {
    const value = parseRepaired(candidate)
    if (isRecord(value)) return { ok: true, value, repaired: true }
    if (typeof value === 'string' && value !== candidate) {
      const inner = parseArguments(value)
      if (inner.ok) return { ok: true, value: inner.value, repaired: true }
    }
    if (Array.isArray(value) && value.length === 1 && isRecord(value[0])) {
      return { ok: true, value: value[0], repaired: true }
    }
    return { ok: false, error: `arguments must be a JSON object, got ${describe(value)}` }
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error)
    return { ok: false, error: `arguments are not JSON and could not be repaired (${reason})` }
  }
}
