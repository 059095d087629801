import { existsSync } from 'node:fs'
import type { TestProject } from 'vitest/node'
import which from 'which'
import { findRigOllama, RIG_OLLAMA_VERSION } from '../../src/core/engine/ollama-serve.js'
import { resolveEngine } from '../../src/core/engine/resolve.js'
import { ensureSynthModel } from '../../src/core/models/synth.js'

export interface RigInfo {
  llamaServer: string | undefined
  llamaBench: string | undefined
  tinyModel: string | undefined
  ollama: string | undefined
  redisServer: string | undefined
  /** Debian's chromium, for tests that open velo's HTML reports in a real browser. */
  chromium: string | undefined
  /** Why a backend is missing, by name; tests that need it skip with this reason (CI fails instead). */
  missing: Record<string, string>
}

declare module 'vitest' {
  export interface ProvidedContext {
    rig: RigInfo
  }
}

/** Where Debian's `chromium` package puts the browser (scripts/rig.sh installs it). */
export const CHROMIUM_PATH = '/usr/bin/chromium'

/** Find the rig's engines once per run; a fresh tiny synthetic model is made if none is cached. */
export default async function setup(project: TestProject): Promise<void> {
  const missing: Record<string, string> = {}
  const engine = await resolveEngine()
  if (!engine) missing['llama-server'] = 'no llama-server: run `scripts/rig.sh` (or `velo engine install`)'
  let tinyModel: string | undefined
  if (engine) {
    tinyModel = await ensureSynthModel('tiny')
  }
  const ollama = await findRigOllama()
  if (!ollama) missing['ollama'] = `no ollama ${RIG_OLLAMA_VERSION}: run \`scripts/rig.sh\` (needs go)`
  const redisServer = (await which('redis-server', { nothrow: true })) ?? undefined
  if (!redisServer)
    missing['redis'] = 'no redis-server: apt-get install redis-server (or run scripts/rig.sh as root)'
  const chromium = existsSync(CHROMIUM_PATH) ? CHROMIUM_PATH : undefined
  if (!chromium) missing['chromium'] = 'no chromium: apt-get install chromium (or run scripts/rig.sh as root)'
  if (process.env['CI'] && Object.keys(missing).length > 0) {
    throw new Error(`CI: the rig is incomplete:\n${Object.values(missing).join('\n')}`)
  }
  for (const reason of Object.values(missing)) console.warn(`[rig] skipping tests: ${reason}`)
  project.provide('rig', {
    llamaServer: engine?.serverPath,
    llamaBench: engine?.benchPath,
    tinyModel,
    ollama,
    redisServer,
    chromium,
    missing,
  })
}
