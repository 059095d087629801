import { type RepairOptions, repairToolCalls } from './repair.js'
import { isRecord, type JsonSchema, type RepairResult, type ToolSpec } from './types.js'

/**
 * Enforcement mode: for models without native tool support (or that write broken calls), constrain
 * decoding so that the output can only be a valid tool call. velo builds one JSON schema,
 *
 *   {"name": <one of the tools, as a const>, "arguments": <that tool's parameters schema>}
 *
 * (an `anyOf` over the tools; plus `{"content": string}` when `tool_choice` is `auto` and text
 * answers are allowed), and sends it as the engine's structured-output constraint: llama-server's
 * `response_format: {type: "json_schema"}` (compiled to a grammar), Ollama's `format`. The tools stay in
 * the request so the chat template still shows them to the model. `parseEnforcedOutput` turns the
 * constrained JSON back into tool calls.
 *
 * Grammars bound structure, not length: a model can keep writing inside a string or keep adding
 * properties forever. So the enforcement schema closes objects (`additionalProperties: false` where
 * the tool left it open) and can cap strings without a limit (`maxStringLength`) and arrays
 * (`maxArrayItems`), which is what lets even a random-weight model finish a valid call.
 */

export interface EnforceOptions {
  /** maxLength for string values whose schema sets none (0: no cap). */
  maxStringLength?: number
  /** maxItems for arrays whose schema sets none (0: no cap). */
  maxArrayItems?: number
  /** With tool_choice auto (or absent), also allow `{"content": "..."}` as a text answer (default true). */
  allowText?: boolean
  /** Close objects whose schema leaves additionalProperties open (default true). */
  closeObjects?: boolean
}

export type ToolChoice = unknown

/** The tools the choice allows, or undefined for `none` (no enforcement). */
function allowedTools(tools: readonly ToolSpec[], choice: ToolChoice): ToolSpec[] | undefined {
  if (choice === 'none') return undefined
  if (isRecord(choice)) {
    const fn = isRecord(choice['function']) ? choice['function'] : choice
    const name = typeof fn['name'] === 'string' ? fn['name'] : undefined
    if (name) return tools.filter((tool) => tool.name === name)
  }
  return [...tools]
}

function tighten(schema: unknown, options: EnforceOptions): unknown {
  if (Array.isArray(schema)) return schema.map((item) => tighten(item, options))
  if (!isRecord(schema)) return schema
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(schema)) {
    if (key === 'properties' && isRecord(value)) {
      out[key] = Object.fromEntries(Object.entries(value).map(([name, sub]) => [name, tighten(sub, options)]))
    } else if (
      key === 'enum' ||
      key === 'const' ||
      key === 'default' ||
      key === 'examples' ||
      key === 'required'
    ) {
      out[key] = value
    } else out[key] = tighten(value, options)
  }
  const types = Array.isArray(out['type']) ? out['type'] : [out['type']]
  const hasChoice = out['enum'] !== undefined || out['const'] !== undefined
  if (
    types.includes('string') &&
    !hasChoice &&
    out['maxLength'] === undefined &&
    out['pattern'] === undefined &&
    out['format'] === undefined &&
    (options.maxStringLength ?? 0) > 0
  ) {
    out['maxLength'] = options.maxStringLength
  }
  if (types.includes('array') && out['maxItems'] === undefined && (options.maxArrayItems ?? 0) > 0) {
    out['maxItems'] = options.maxArrayItems
  }
  if (
    (types.includes('object') || out['properties'] !== undefined) &&
    out['additionalProperties'] === undefined &&
    options.closeObjects !== false
  ) {
    out['additionalProperties'] = false
  }
  return out
}

function argumentsSchema(tool: ToolSpec, options: EnforceOptions): JsonSchema {
  const base = tool.parameters ?? { type: 'object', properties: {} }
  const { $schema: _schema, $id: _id, ...rest } = base
  const schema = tighten(rest, options)
  return isRecord(schema) ? schema : { type: 'object' }
}

/** The JSON schema an enforced answer must match; undefined when nothing is to be enforced. */
export function toolCallSchema(
  tools: readonly ToolSpec[],
  choice: ToolChoice,
  options: EnforceOptions = {},
): JsonSchema | undefined {
  const allowed = allowedTools(tools, choice)
  if (!allowed || allowed.length === 0) return undefined
  const branches: JsonSchema[] = allowed.map((tool) => ({
    type: 'object',
    properties: { name: { const: tool.name }, arguments: argumentsSchema(tool, options) },
    required: ['name', 'arguments'],
    additionalProperties: false,
  }))
  const textAllowed = (choice === undefined || choice === 'auto') && options.allowText !== false
  if (textAllowed) {
    const content: JsonSchema = { type: 'string' }
    if ((options.maxStringLength ?? 0) > 0) content['maxLength'] = options.maxStringLength
    branches.push({
      type: 'object',
      properties: { content },
      required: ['content'],
      additionalProperties: false,
    })
  }
  const [only] = branches
  return branches.length === 1 && only ? only : { anyOf: branches }
}

export type EnforcementTarget = 'openai' | 'ollama'

/**
 * Fields to merge into the upstream request body: `response_format` for OpenAI-compatible engines
 * (llama-server; also vLLM and others that accept json_schema), `format` for Ollama's /api/chat.
 * Undefined when the request has no tools or `tool_choice` is `none`.
 */
export function enforcementFields(
  target: EnforcementTarget,
  tools: readonly ToolSpec[],
  choice: ToolChoice,
  options: EnforceOptions = {},
): Record<string, unknown> | undefined {
  const schema = toolCallSchema(tools, choice, options)
  if (!schema) return undefined
  if (target === 'ollama') return { format: schema }
  return {
    response_format: { type: 'json_schema', json_schema: { name: 'tool_call', strict: true, schema } },
  }
}

/** Turn an enforced answer back into tool calls (or text, for a `{"content": ...}` answer). */
export function parseEnforcedOutput(
  text: string,
  tools: readonly ToolSpec[],
  options: RepairOptions = {},
): RepairResult {
  try {
    const parsed: unknown = JSON.parse(text)
    if (isRecord(parsed) && typeof parsed['content'] === 'string' && Object.keys(parsed).length === 1) {
      return repairToolCalls({ content: parsed['content'], toolCalls: [] }, tools, {
        ...options,
        recoverFromText: false,
      })
    }
  } catch {
    // Not JSON (the engine ignored the constraint, or output was cut off): repair handles it below.
  }
  return repairToolCalls({ content: text, toolCalls: [] }, tools, { ...options, recoverFromText: true })
}
