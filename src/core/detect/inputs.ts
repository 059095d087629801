import { stat } from 'node:fs/promises'
import { resolve } from 'node:path'
import { VeloError } from '../errors.js'
import { expandHome } from '../paths.js'

/** Each `--models-dir` must be a folder: a typo should fail loudly, not look like "no models". */
export async function checkModelsDirs(dirs: string[]): Promise<string[]> {
  const resolved: string[] = []
  for (const dir of dirs) {
    const path = resolve(expandHome(dir))
    const info = await stat(path).catch(() => undefined)
    if (!info?.isDirectory()) {
      throw new VeloError(
        'VELO_BAD_REQUEST',
        `--models-dir ${dir}: expected a folder, ${info ? 'got a file' : 'it does not exist'}`,
        { suggestion: 'pass a folder that holds .gguf files', exitCode: 2 },
      )
    }
    resolved.push(path)
  }
  return resolved
}

/** A URL flag must be an http(s) URL; say which flag and what was given. */
export function checkUrl(flag: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined
  const url = URL.canParse(value) ? new URL(value) : undefined
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw new VeloError(
      'VELO_BAD_REQUEST',
      `${flag} ${value}: expected an http(s) URL like http://127.0.0.1:11434`,
      {
        suggestion: `pass ${flag} with a scheme, host and port`,
        exitCode: 2,
      },
    )
  }
  return value.replace(/\/+$/, '')
}

/** Config folders that exist; a missing one becomes a note. */
export async function existingDirs(dirs: string[], notes: string[], what: string): Promise<string[]> {
  const found: string[] = []
  for (const dir of dirs) {
    const path = resolve(expandHome(dir))
    if ((await stat(path).catch(() => undefined))?.isDirectory()) found.push(path)
    else notes.push(`models: ${what} ${dir} is not a folder; skipped`)
  }
  return found
}
