import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv'
import { Ajv2020 } from 'ajv/dist/2020.js'
import { jsonrepair } from 'jsonrepair'
import { isRecord, type JsonSchema } from './types.js'

/**
 * Validate tool-call arguments against the tool's JSON schema (ajv), with only safe coercions:
 *  - a numeric string where a number or integer is required ("42" -> 42, not "4x2" or "")
 *  - "true"/"false" where a boolean is required
 *  - a number where a string is required (42 -> "42")
 *  - JSON (or Python-literal) text where an object or array is required ("{\"a\":1}" -> {a: 1},
 *    "['a', 'b']" -> ["a", "b"])
 *  - a string that matches exactly one enum member up to letter case ("Celsius" -> "celsius")
 * Nothing is invented: no defaults filled in, no properties dropped, no null turned into 0.
 *
 * Validators are compiled once per distinct schema and kept (tools repeat on every request of an
 * agent). Schemas are tried as draft-07 first (what most tool definitions are written in), then
 * 2020-12; a schema neither accepts is reported once and its calls are not validated.
 */

export type Validation =
  | { ok: true; value: Record<string, unknown>; coerced: number }
  | { ok: false; value: Record<string, unknown>; errors: string[]; coerced: number }

const options = { strict: false, allErrors: true, validateFormats: false, allowUnionTypes: true } as const
const draft07 = new Ajv(options)
const draft2020 = new Ajv2020(options)

/** Compiled validators by schema text; undefined when the schema does not compile. */
const compiled = new Map<string, ValidateFunction | undefined>()
const MAX_COMPILED = 512

function compile(schema: JsonSchema): ValidateFunction | undefined {
  const { $schema: _ignored, $id: _id, ...rest } = schema
  const key = JSON.stringify(rest)
  if (compiled.has(key)) return compiled.get(key)
  let validate: ValidateFunction | undefined
  for (const ajv of [draft07, draft2020]) {
    try {
      validate = ajv.compile(rest)
      break
    } catch {
      // Try the next draft.
    }
  }
  if (compiled.size >= MAX_COMPILED) {
    const oldest = compiled.keys().next().value
    if (oldest !== undefined) compiled.delete(oldest)
  }
  compiled.set(key, validate)
  return validate
}

/** Whether the schema compiles (a tool with a broken schema is not validated). */
export function schemaCompiles(schema: JsonSchema): boolean {
  return compile(schema) !== undefined
}

function pointerSegments(pointer: string): string[] {
  if (pointer === '') return []
  return pointer
    .slice(1)
    .split('/')
    .map((segment) => segment.replace(/~1/g, '/').replace(/~0/g, '~'))
}

function getAt(root: unknown, segments: string[]): unknown {
  let current = root
  for (const segment of segments) {
    if (Array.isArray(current)) current = current[Number(segment)]
    else if (isRecord(current)) current = current[segment]
    else return undefined
  }
  return current
}

function setAt(root: Record<string, unknown>, segments: string[], value: unknown): boolean {
  const parentPath = segments.slice(0, -1)
  const last = segments[segments.length - 1]
  if (last === undefined) return false
  const parent = getAt(root, parentPath)
  if (Array.isArray(parent)) parent[Number(last)] = value
  else if (isRecord(parent)) parent[last] = value
  else return false
  return true
}

function parseLoosely(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    try {
      return JSON.parse(jsonrepair(text))
    } catch {
      return undefined
    }
  }
}

const NUMERIC = /^\s*-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*$/

function coerce(value: unknown, error: ErrorObject): { value: unknown } | undefined {
  if (error.keyword === 'type') {
    const raw = (error.params as { type?: string | string[] }).type
    const wanted = Array.isArray(raw) ? raw : String(raw ?? '').split(',')
    if (typeof value === 'string') {
      const text = value.trim()
      if ((wanted.includes('number') || wanted.includes('integer')) && NUMERIC.test(text)) {
        const number = Number(text)
        if (Number.isFinite(number) && (wanted.includes('number') || Number.isInteger(number)))
          return { value: number }
      }
      if (wanted.includes('boolean') && /^(true|false)$/i.test(text))
        return { value: text.toLowerCase() === 'true' }
      if ((wanted.includes('object') || wanted.includes('array')) && /^[[{]/.test(text)) {
        const parsed = parseLoosely(text)
        if (
          (wanted.includes('object') && isRecord(parsed)) ||
          (wanted.includes('array') && Array.isArray(parsed))
        ) {
          return { value: parsed }
        }
      }
    }
    if (typeof value === 'number' && wanted.includes('string')) return { value: String(value) }
    return undefined
  }
  if (error.keyword === 'enum' && typeof value === 'string') {
    const allowed = (error.params as { allowedValues?: unknown[] }).allowedValues ?? []
    const matches = allowed.filter(
      (a) => typeof a === 'string' && a.toLowerCase() === value.trim().toLowerCase(),
    )
    if (matches.length === 1) return { value: matches[0] }
  }
  return undefined
}

function describeError(error: ErrorObject, value: unknown): string {
  const where = error.instancePath === '' ? '' : `${error.instancePath} `
  if (error.keyword === 'enum') {
    const allowed = ((error.params as { allowedValues?: unknown[] }).allowedValues ?? []).map((v) =>
      JSON.stringify(v),
    )
    return `${where}must be one of ${allowed.join(', ')} (got ${JSON.stringify(value)})`
  }
  if (error.keyword === 'required') {
    return `${where}missing required property "${(error.params as { missingProperty?: string }).missingProperty}"`
  }
  if (error.keyword === 'additionalProperties') {
    return `${where}unknown property "${(error.params as { additionalProperty?: string }).additionalProperty}"`
  }
  const got = value === undefined ? '' : ` (got ${JSON.stringify(value)?.slice(0, 60)})`
  return `${where}${error.message ?? 'is invalid'}${error.keyword === 'type' ? got : ''}`
}

export function validateArguments(schema: JsonSchema | undefined, args: Record<string, unknown>): Validation {
  if (!schema) return { ok: true, value: args, coerced: 0 }
  const validate = compile(schema)
  if (!validate) return { ok: true, value: args, coerced: 0 }
  if (validate(args)) return { ok: true, value: args, coerced: 0 }
  const value = structuredClone(args)
  let coerced = 0
  for (let round = 0; round < 4; round++) {
    if (validate(value)) return { ok: true, value, coerced }
    let changed = false
    for (const error of validate.errors ?? []) {
      const segments = pointerSegments(error.instancePath)
      if (segments.length === 0) continue
      const current = getAt(value, segments)
      const fixed = coerce(current, error)
      if (fixed && setAt(value, segments, fixed.value)) {
        coerced++
        changed = true
      }
    }
    if (!changed) break
  }
  if (validate(value)) return { ok: true, value, coerced }
  const errors = (validate.errors ?? [])
    // anyOf/oneOf report every branch; the summary line says enough.
    .filter((error) => error.keyword !== 'if')
    .map((error) => describeError(error, getAt(value, pointerSegments(error.instancePath))))
  return { ok: false, value, errors: [...new Set(errors)], coerced }
}
