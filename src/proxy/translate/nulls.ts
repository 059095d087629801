/**
 * velo accepts `null` for any optional field ("not set", as Python and LangChain clients send it).
 * llama-server does not everywhere: a null `encoding_format`, message `name`, `tool_call_id` or
 * `reasoning_content`, tool `description` or image `detail` gets a 500 ("type must be string, but is
 * null"). So a body that goes to an OpenAI-compatible upstream as the client wrote it loses those
 * nulls first. Only the request's own fields are touched: a JSON schema inside (tool `parameters`,
 * `response_format`) may hold nulls that mean something (`"default": null`).
 */
import { isRecord } from './common.js'

/** Message fields whose null means "not set"; `content: null` is kept (an assistant's tool-call turn). */
const MESSAGE_KEEPS = new Set(['content'])
/** `arguments: null` is kept: llama-server reads it as no arguments. */
const TOOL_CALL_FUNCTION_KEEPS = new Set(['arguments'])
const NONE = new Set<string>()

/**
 * Whether the JSON text `raw` can hold a null: a null value is the literal `null` in the text, so a
 * body without those four bytes anywhere (the common case) has none and needs no walk.
 */
export function mayHoldNull(raw: Buffer): boolean {
  return raw.includes('null')
}

/**
 * The body without its "not set" nulls, or undefined when it has none (so the bytes the client
 * sent can go upstream unchanged, which is the common case).
 */
export function withoutNullFields(body: Record<string, unknown>): Record<string, unknown> | undefined {
  let changed = false
  const drop = (object: Record<string, unknown>, keep: Set<string>): Record<string, unknown> => {
    let out: Record<string, unknown> | undefined
    for (const [key, value] of Object.entries(object)) {
      if (value === null && !keep.has(key)) {
        out ??= { ...object }
        delete out[key]
      }
    }
    if (!out) return object
    changed = true
    return out
  }
  const each = (
    list: unknown,
    clean: (item: Record<string, unknown>) => Record<string, unknown>,
  ): unknown => {
    if (!Array.isArray(list)) return list
    let out: unknown[] | undefined
    list.forEach((item, index) => {
      if (!isRecord(item)) return
      const cleaned = clean(item)
      if (cleaned === item) return
      out ??= [...list]
      out[index] = cleaned
    })
    return out ?? list
  }
  const nested = (
    object: Record<string, unknown>,
    key: string,
    clean: (value: Record<string, unknown>) => Record<string, unknown>,
  ): Record<string, unknown> => {
    const value = object[key]
    if (!isRecord(value)) return object
    const cleaned = clean(value)
    return cleaned === value ? object : { ...object, [key]: cleaned }
  }
  const listed = (
    object: Record<string, unknown>,
    key: string,
    clean: (item: Record<string, unknown>) => Record<string, unknown>,
  ): Record<string, unknown> => {
    const value = object[key]
    const cleaned = each(value, clean)
    return cleaned === value ? object : { ...object, [key]: cleaned }
  }

  const part = (item: Record<string, unknown>): Record<string, unknown> =>
    nested(drop(item, NONE), 'image_url', (image) => drop(image, NONE))
  const toolCall = (call: Record<string, unknown>): Record<string, unknown> =>
    nested(drop(call, NONE), 'function', (fn) => drop(fn, TOOL_CALL_FUNCTION_KEEPS))
  const message = (item: Record<string, unknown>): Record<string, unknown> =>
    listed(listed(drop(item, MESSAGE_KEEPS), 'content', part), 'tool_calls', toolCall)
  const tool = (item: Record<string, unknown>): Record<string, unknown> =>
    nested(drop(item, NONE), 'function', (fn) => drop(fn, NONE))

  let out = drop(body, NONE)
  out = listed(out, 'messages', message)
  out = listed(out, 'tools', tool)
  out = nested(out, 'stream_options', (options) => drop(options, NONE))
  return changed ? out : undefined
}
