/**
 * `ollama serve` as the test rig and the benchmarks run it: a binary built by scripts/rig.sh, on a
 * free port, with its home and models in a folder of its own, serving velo's synthetic models.
 * One place for the binary's cache path and the Modelfile, which the rig, `npm run soak`,
 * `npm run perf:optimize` and the translation fixtures all need alike.
 */
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { homedir, tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import { request } from 'undici'
import which from 'which'
import { SYNTH_OLLAMA_TEMPLATE } from '../models/synth.js'
import { freePort, spawnSupervised, waitUntil } from '../process/supervise.js'

export const RIG_OLLAMA_VERSION = process.env['VELO_OLLAMA_VERSION'] ?? 'v0.17.4'

/** `OLLAMA_BIN`, else the rig's build (scripts/rig.sh), else `ollama` on PATH; undefined if none. */
export async function findRigOllama(): Promise<string | undefined> {
  const fromEnv = process.env['OLLAMA_BIN']
  if (fromEnv && existsSync(fromEnv)) return fromEnv
  const cache = process.env['XDG_CACHE_HOME'] || join(homedir(), '.cache')
  const built = join(cache, 'velo-rig', `ollama-${RIG_OLLAMA_VERSION}-native`, 'bin', 'ollama')
  if (existsSync(built)) return built
  return (await which('ollama', { nothrow: true })) ?? undefined
}

export interface OllamaServe {
  url: string
  /** `ollama create NAME` from a GGUF with the synthetic models' chat template and these PARAMETERs. */
  create(
    name: string,
    gguf: string,
    options?: { parameters?: Record<string, string | number>; timeoutMs?: number },
  ): Promise<void>
  /** Stop the server; a home folder it made itself is removed. */
  stop(): Promise<void>
}

export interface OllamaServeOptions {
  binary: string
  /** Home and models folder; by default a new temporary folder, removed by stop(). */
  home?: string
  /** Added to HOME, OLLAMA_HOST and OLLAMA_MODELS (OLLAMA_KEEP_ALIVE, OLLAMA_NUM_PARALLEL ...). */
  env?: Record<string, string>
  /** Lines of the server's output kept for error messages. */
  keepLines?: number
}

export async function startOllamaServe(options: OllamaServeOptions): Promise<OllamaServe> {
  const home = options.home ?? (await mkdtemp(join(tmpdir(), 'velo-ollama-')))
  const ownHome = options.home === undefined
  const port = await freePort()
  const env = {
    ...process.env,
    HOME: home,
    OLLAMA_HOST: `127.0.0.1:${port}`,
    OLLAMA_MODELS: join(home, 'models'),
    ...options.env,
  }
  const proc = spawnSupervised(options.binary, ['serve'], {
    env,
    ...(options.keepLines === undefined ? {} : { keepLines: options.keepLines }),
  })
  const url = `http://127.0.0.1:${port}`
  const stop = async (): Promise<void> => {
    await proc.stop()
    if (ownHome) await rm(home, { recursive: true, force: true })
  }
  try {
    await waitUntil(
      async () => {
        const response = await request(`${url}/api/version`)
        await response.body.dump()
        return response.statusCode === 200
      },
      { timeoutMs: 60_000, process: proc, what: 'ollama serve' },
    )
  } catch (error) {
    await stop()
    throw error
  }
  return {
    url,
    async create(name, gguf, { parameters = {}, timeoutMs = 120_000 } = {}) {
      const modelfile = join(home, `${name.replace(/[^a-z0-9]/gi, '_')}.Modelfile`)
      const lines = [
        `FROM ${gguf}`,
        `TEMPLATE """${SYNTH_OLLAMA_TEMPLATE}"""`,
        'PARAMETER stop "<|im_end|>"',
        ...Object.entries(parameters).map(([key, value]) => `PARAMETER ${key} ${value}`),
      ]
      await writeFile(modelfile, `${lines.join('\n')}\n`)
      await execa(options.binary, ['create', name, '-f', modelfile], { env, timeout: timeoutMs })
    },
    stop,
  }
}
