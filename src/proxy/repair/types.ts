/** Shared shapes of the tool-call repair stage, independent of the OpenAI and Ollama wire formats. */

export type JsonSchema = Record<string, unknown>

/** A tool the client declared (OpenAI `tools[].function`, Ollama `tools[].function`, legacy `functions[]`). */
export interface ToolSpec {
  name: string
  description?: string
  /** The JSON schema of the arguments; undefined when the tool takes none or declared none. */
  parameters: JsonSchema | undefined
}

/** A tool call as it came from the model: any field may be missing or malformed. */
export interface RawToolCall {
  id?: string | undefined
  name?: string | undefined
  /** A JSON string (OpenAI), an object (Ollama), or whatever the model wrote. */
  arguments?: unknown
}

/** A tool call that names a declared tool and whose arguments match its schema. */
export interface RepairedToolCall {
  id: string
  name: string
  arguments: Record<string, unknown>
  /** The arguments as a JSON string: the upstream's own text when it needed no change. */
  argumentsJson: string
}

export type ToolCallProblemKind = 'missing-name' | 'unknown-tool' | 'unparseable-arguments' | 'schema'

/** A call that could not be repaired, described so that the client (or the model) can act on it. */
export interface ToolCallProblem {
  index: number
  name: string | undefined
  kind: ToolCallProblemKind
  /** One line per issue, e.g. `get_weather: /unit must be one of c, f (got "kelvin")`. */
  message: string
  /** The call as the model wrote it. */
  raw: RawToolCall
}

export interface RepairCounts {
  /** Calls whose arguments were not valid JSON and were repaired. */
  argumentsRepaired: number
  /** Calls recovered from the message text (the upstream did not parse them). */
  recovered: number
  /** Exact duplicates dropped. */
  duplicatesDropped: number
  /** Calls that got a new id (missing or repeated). */
  idsAssigned: number
  /** Values coerced to the schema's type (numeric strings, "true"/"false", JSON in a string). */
  coerced: number
  /** Tool names corrected to a declared tool (case, `functions.` prefix, - versus _). */
  namesFixed: number
}

export interface RepairResult {
  /** The message text after recovered calls were taken out of it; null when nothing is left. */
  content: string | null
  /** Valid calls, in order. */
  calls: RepairedToolCall[]
  /** Calls that stay invalid after repair. */
  problems: ToolCallProblem[]
  counts: RepairCounts
  /** The text format the calls were recovered from (`hermes`, `mistral`, `llama3-json`, ...). */
  recoveredFrom: string | undefined
  /** Whether anything differs from what the upstream sent. */
  changed: boolean
  /** No problems: every call is valid. */
  ok: boolean
}

export function emptyCounts(): RepairCounts {
  return {
    argumentsRepaired: 0,
    recovered: 0,
    duplicatesDropped: 0,
    idsAssigned: 0,
    coerced: 0,
    namesFixed: 0,
  }
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** The tools a request declares, from OpenAI/Ollama `tools` or legacy OpenAI `functions`. */
export function toolsFromRequest(body: unknown): ToolSpec[] {
  if (!isRecord(body)) return []
  const out: ToolSpec[] = []
  const add = (fn: unknown) => {
    if (!isRecord(fn) || typeof fn['name'] !== 'string' || fn['name'].length === 0) return
    const parameters = isRecord(fn['parameters']) ? fn['parameters'] : undefined
    const spec: ToolSpec = { name: fn['name'], parameters }
    if (typeof fn['description'] === 'string') spec.description = fn['description']
    out.push(spec)
  }
  const tools = body['tools']
  if (Array.isArray(tools)) {
    for (const tool of tools) {
      if (!isRecord(tool)) continue
      add(isRecord(tool['function']) ? tool['function'] : tool)
    }
  }
  const functions = body['functions']
  if (Array.isArray(functions)) for (const fn of functions) add(fn)
  return out
}
