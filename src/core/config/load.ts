import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { isMap, isSeq, LineCounter, parseDocument } from 'yaml'
import type { z } from 'zod'
import { VeloError } from '../errors.js'
import { defaultConfigFile } from '../paths.js'
import { configSchema, type VeloConfig } from './schema.js'

function describe(value: unknown): string {
  if (value === undefined) return 'nothing'
  const text = JSON.stringify(value)
  return text && text.length > 40 ? `${text.slice(0, 37)}...` : String(text)
}

/** Find the line of a path in the YAML document, for error messages a person can act on. */
function lineOf(
  doc: ReturnType<typeof parseDocument>,
  counter: LineCounter,
  path: PropertyKey[],
): number | undefined {
  let node: unknown = doc.contents
  for (const key of path) {
    if (isMap(node)) node = node.get(key as string, true)
    else if (isSeq(node)) node = node.get(Number(key), true)
    else break
  }
  const range = (node as { range?: [number, number, number] } | undefined)?.range
  return range ? counter.linePos(range[0]).line : undefined
}

function pathLabel(path: PropertyKey[]): string {
  return path.reduce<string>(
    (label, key) =>
      typeof key === 'number' ? `${label}[${key}]` : label ? `${label}.${String(key)}` : String(key),
    '',
  )
}

export function formatIssues(
  file: string,
  issues: z.core.$ZodIssue[],
  locate: (path: PropertyKey[]) => number | undefined,
  input: unknown,
): string {
  const lines = issues.slice(0, 5).map((issue) => {
    const path = issue.path
    const line = locate(path)
    let got: unknown = input
    for (const key of path) got = (got as Record<PropertyKey, unknown> | undefined)?.[key]
    const where = `${file}${line ? `:${line}` : ''}: ${pathLabel(path) || '(root)'}`
    // A secret (an API key, a Redis URL with a password) is never echoed into logs or terminals.
    const secret = path.some((key) => typeof key === 'string' && /key$|redis/i.test(key))
    const message =
      issue.code === 'unrecognized_keys' || secret ? issue.message : `${issue.message}, got ${describe(got)}`
    return `${where}: ${message}`
  })
  if (issues.length > 5) lines.push(`... and ${issues.length - 5} more`)
  return lines.join('\n')
}

/** Validate a config object (already parsed); throws VELO_CONFIG_INVALID naming each bad field. */
export function parseConfig(input: unknown, file = 'velo.yaml', source?: string): VeloConfig {
  const result = configSchema.safeParse(input ?? {})
  if (result.success) return result.data
  let locate = (_path: PropertyKey[]): number | undefined => undefined
  if (source !== undefined) {
    const counter = new LineCounter()
    const doc = parseDocument(source, { lineCounter: counter })
    locate = (path) => lineOf(doc, counter, path)
  }
  throw new VeloError('VELO_CONFIG_INVALID', formatIssues(file, result.error.issues, locate, input), {
    suggestion: 'fix the fields above; see docs/configuration.md',
    exitCode: 2,
  })
}

export interface LoadedConfig {
  config: VeloConfig
  /** The file it came from; undefined when none exists and defaults apply. */
  file: string | undefined
}

/** Load velo.yaml: the given file (which must exist), else the default location if present, else defaults. */
export async function loadConfig(file?: string, env: NodeJS.ProcessEnv = process.env): Promise<LoadedConfig> {
  const path = file ?? defaultConfigFile(env)
  if (!existsSync(path)) {
    if (file) {
      throw new VeloError('VELO_CONFIG_INVALID', `config file ${file} does not exist`, {
        suggestion: 'pass an existing file to --config, or omit it to use defaults',
        exitCode: 2,
      })
    }
    return { config: parseConfig({}), file: undefined }
  }
  const source = await readFile(path, 'utf8')
  const doc = parseDocument(source, { prettyErrors: true })
  if (doc.errors.length > 0) {
    const first = doc.errors[0]
    throw new VeloError('VELO_CONFIG_INVALID', `${path}: invalid YAML: ${first?.message ?? 'parse error'}`, {
      exitCode: 2,
    })
  }
  return { config: parseConfig(doc.toJS(), path, source), file: path }
}
