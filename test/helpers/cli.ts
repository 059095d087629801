import { fileURLToPath } from 'node:url'
import { execa } from 'execa'

export const VELO_BIN = fileURLToPath(new URL('../../bin/run.js', import.meta.url))

/** Run the built CLI the way a user does (`npm test` builds it first). */
export function velo(args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}) {
  return execa(process.execPath, [VELO_BIN, ...args], { reject: false, timeout: 600_000, ...options })
}
