import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import { request } from 'undici'
import { inject } from 'vitest'
import { type LlamaServer, startLlamaServer } from '../../src/core/engine/llama-server.js'
import { SYNTH_OLLAMA_TEMPLATE } from '../../src/core/models/synth.js'
import { freePort, spawnSupervised, waitUntil } from '../../src/core/process/supervise.js'
import type { RigInfo } from './global-setup.js'

export function rig(): RigInfo {
  return inject('rig')
}

/** True when the backend is missing; the reason is printed so a skip is never silent. */
export function lacks(name: 'llama-server' | 'ollama' | 'redis' | 'chromium'): boolean {
  const reason = rig().missing[name]
  if (reason) console.warn(`[rig] skipped: ${reason}`)
  return reason !== undefined
}

export function required<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`rig: ${what} is not available`)
  return value
}

/** llama-server (velo's engine) serving the tiny synthetic model on a free port. */
export function startRigLlamaServer(
  options: { args?: string[]; model?: string; alias?: string } = {},
): Promise<LlamaServer> {
  const info = rig()
  return startLlamaServer({
    serverPath: required(info.llamaServer, 'llama-server'),
    model: options.model ?? required(info.tinyModel, 'tiny model'),
    alias: options.alias ?? 'velo-tiny',
    args: ['--ctx-size', '2048', '--parallel', '2', ...(options.args ?? [])],
  })
}

export interface RigOllama {
  url: string
  /** `ollama create NAME` from a GGUF with the synthetic model's chat template. */
  create(name: string, gguf: string): Promise<void>
  stop(): Promise<void>
}

/** `ollama serve` on a free port with its models and home in a temporary folder. */
export async function startRigOllama(): Promise<RigOllama> {
  const binary = required(rig().ollama, 'ollama')
  const port = await freePort()
  const home = await mkdtemp(join(tmpdir(), 'velo-ollama-'))
  const env = {
    ...process.env,
    HOME: home,
    OLLAMA_HOST: `127.0.0.1:${port}`,
    OLLAMA_MODELS: join(home, 'models'),
    OLLAMA_NOPRUNE: '1',
    OLLAMA_KEEP_ALIVE: '10m',
  }
  const proc = spawnSupervised(binary, ['serve'], { env })
  const url = `http://127.0.0.1:${port}`
  await waitUntil(
    async () => {
      const response = await request(`${url}/api/version`)
      await response.body.dump()
      return response.statusCode === 200
    },
    { timeoutMs: 60_000, process: proc, what: 'ollama serve' },
  )
  return {
    url,
    async create(name, gguf) {
      const modelfile = join(home, `${name.replace(/[^a-z0-9]/gi, '_')}.Modelfile`)
      await writeFile(
        modelfile,
        `FROM ${gguf}\nTEMPLATE """${SYNTH_OLLAMA_TEMPLATE}"""\nPARAMETER stop "<|im_end|>"\nPARAMETER num_ctx 2048\n`,
      )
      await execa(binary, ['create', name, '-f', modelfile], { env, timeout: 120_000 })
    },
    async stop() {
      await proc.stop()
      await rm(home, { recursive: true, force: true })
    },
  }
}

export interface RigRedis {
  url: string
  stop(): Promise<void>
}

export async function startRigRedis(): Promise<RigRedis> {
  const binary = required(rig().redisServer, 'redis-server')
  const port = await freePort()
  const proc = spawnSupervised(binary, [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
  ])
  await waitUntil(
    async () => {
      const { stdout } = await execa('redis-cli', ['-p', String(port), 'ping'], { reject: false })
      return stdout.trim() === 'PONG'
    },
    { timeoutMs: 20_000, process: proc, what: 'redis-server' },
  )
  return { url: `redis://127.0.0.1:${port}`, stop: () => proc.stop() }
}
