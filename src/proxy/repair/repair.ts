import { randomBytes } from 'node:crypto'
import { parseArguments, splitConcatenatedObjects } from './arguments.js'
import { extractToolCalls } from './extract.js'
import {
  emptyCounts,
  type RawToolCall,
  type RepairedToolCall,
  type RepairResult,
  type ToolCallProblem,
  type ToolSpec,
} from './types.js'
import { validateArguments } from './validate.js'

/**
 * The core of tool-call repair, on neutral shapes: take a message's text and tool calls as the
 * upstream sent them, and return valid calls plus clear problems for what cannot be repaired.
 *
 *  1. No calls but text, and tools declared: recover calls written as text (extract.ts).
 *  2. Each call: a declared tool name (fixing case, a `functions.` prefix, `-` versus `_`), arguments
 *     parsed or repaired (arguments.ts), validated with safe coercions (validate.ts).
 *  3. Exact duplicates (same name, same arguments) dropped; every call gets a unique id.
 */

export interface RepairOptions {
  /** Look for calls in the text when the upstream returned none (default true). */
  recoverFromText?: boolean
  /** Validate arguments against the tools' schemas (default true). */
  validate?: boolean
  /** New call ids (default `call_` + 24 random characters). */
  newId?: () => string
}

export interface RepairInput {
  content: string | null | undefined
  toolCalls: RawToolCall[]
}

const ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'

export function newCallId(): string {
  const bytes = randomBytes(24)
  let id = 'call_'
  for (const byte of bytes) id += ID_ALPHABET[byte % ID_ALPHABET.length]
  return id
}

const squash = (name: string) => name.toLowerCase().replace(/[-_.\s]/g, '')

/** The declared tool a model meant, or undefined; `fixed` when the name had to be corrected. */
export function resolveToolName(
  name: string,
  tools: readonly ToolSpec[],
): { tool: ToolSpec; fixed: boolean } | undefined {
  const exact = tools.find((tool) => tool.name === name)
  if (exact) return { tool: exact, fixed: false }
  const trimmed = name.trim().replace(/^(?:functions|function|tools|tool)[.:]/i, '')
  const candidates = [
    (tool: ToolSpec) => tool.name === trimmed,
    (tool: ToolSpec) => tool.name.toLowerCase() === trimmed.toLowerCase(),
    (tool: ToolSpec) => squash(tool.name) === squash(trimmed),
  ]
  for (const matches of candidates) {
    const found = tools.filter(matches)
    if (found.length === 1 && found[0]) return { tool: found[0], fixed: true }
    if (found.length > 1) return undefined
  }
  return undefined
}

function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`
  if (value && typeof value === 'object') {
    const record = value as Record<string, unknown>
    return `{${Object.keys(record)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${stableJson(record[key])}`)
      .join(',')}}`
  }
  return JSON.stringify(value) ?? 'null'
}

function rawText(call: RawToolCall): string {
  const args = typeof call.arguments === 'string' ? call.arguments : JSON.stringify(call.arguments ?? {})
  return `${call.name ?? '(no name)'}(${args})`
}

export function repairToolCalls(
  input: RepairInput,
  tools: readonly ToolSpec[],
  options: RepairOptions = {},
): RepairResult {
  const counts = emptyCounts()
  const problems: ToolCallProblem[] = []
  const calls: RepairedToolCall[] = []
  const newId = options.newId ?? newCallId
  let content = input.content ?? null
  let raw = input.toolCalls
  let recoveredFrom: string | undefined
  let changed = false

  if (raw.length === 0 && tools.length > 0 && options.recoverFromText !== false && content) {
    const names = new Set(tools.map((tool) => tool.name))
    const known = (name: string) => names.has(name) || resolveToolName(name, tools) !== undefined
    const extraction = extractToolCalls(content, known)
    if (extraction) {
      raw = extraction.calls
      content = extraction.remaining.length > 0 ? extraction.remaining : null
      recoveredFrom = extraction.format
      counts.recovered = extraction.calls.length
      changed = true
    }
  }

  // One call whose arguments are several objects back to back: parallel calls to one tool.
  const expanded: RawToolCall[] = []
  for (const call of raw) {
    const parts = splitConcatenatedObjects(call.arguments)
    if (!parts) {
      expanded.push(call)
      continue
    }
    parts.forEach((part, i) => {
      expanded.push({
        id: i === 0 ? call.id : undefined,
        name: call.name,
        arguments: JSON.parse(part) as unknown,
      })
    })
    counts.argumentsRepaired += parts.length
    changed = true
  }

  const seen = new Set<string>()
  const ids = new Set<string>()
  expanded.forEach((call, index) => {
    const name = call.name?.trim()
    if (!name) {
      problems.push({
        index,
        name: undefined,
        kind: 'missing-name',
        message: 'a tool call has no function name',
        raw: call,
      })
      return
    }
    let resolvedName = name
    let schema: ToolSpec['parameters']
    if (tools.length > 0) {
      const resolved = resolveToolName(name, tools)
      if (!resolved) {
        const declared = tools.map((tool) => tool.name).join(', ')
        problems.push({
          index,
          name,
          kind: 'unknown-tool',
          message: `${name}: no such tool (declared: ${declared})`,
          raw: call,
        })
        return
      }
      resolvedName = resolved.tool.name
      schema = resolved.tool.parameters
      if (resolved.fixed) {
        counts.namesFixed++
        changed = true
      }
    }
    const parsed = parseArguments(call.arguments)
    if (!parsed.ok) {
      problems.push({
        index,
        name: resolvedName,
        kind: 'unparseable-arguments',
        message: `${resolvedName}: ${parsed.error}`,
        raw: call,
      })
      return
    }
    if (parsed.repaired) {
      counts.argumentsRepaired++
      changed = true
    }
    let args = parsed.value
    if (options.validate !== false) {
      const validation = validateArguments(schema, args)
      counts.coerced += validation.coerced
      if (validation.coerced > 0) changed = true
      if (!validation.ok) {
        problems.push({
          index,
          name: resolvedName,
          kind: 'schema',
          message: `${resolvedName}: ${validation.errors.join('; ')}`,
          raw: call,
        })
        return
      }
      args = validation.value
    }
    const fingerprint = `${resolvedName}\u0000${stableJson(args)}`
    if (seen.has(fingerprint)) {
      counts.duplicatesDropped++
      changed = true
      return
    }
    seen.add(fingerprint)
    let id = typeof call.id === 'string' && call.id.length > 0 ? call.id : undefined
    if (id === undefined || ids.has(id)) {
      id = newId()
      while (ids.has(id)) id = newId()
      counts.idsAssigned++
      changed = true
    }
    ids.add(id)
    // Keep the upstream's own argument text when it was valid JSON that needed no change.
    const original = call.arguments
    const argumentsJson =
      typeof original === 'string' && !parsed.repaired && args === parsed.value && original.trim().length > 0
        ? original
        : JSON.stringify(args)
    calls.push({ id, name: resolvedName, arguments: args, argumentsJson })
  })

  return { content, calls, problems, counts, recoveredFrom, changed, ok: problems.length === 0 }
}

/** One line per problem, for logs, error messages and the corrective retry message. */
export function describeProblems(problems: readonly ToolCallProblem[]): string {
  return problems.map((problem) => `- ${problem.message} [${rawText(problem.raw).slice(0, 200)}]`).join('\n')
}
