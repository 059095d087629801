import { execa } from 'execa'
import { inject } from 'vitest'
import { type LlamaServer, startLlamaServer } from '../../src/core/engine/llama-server.js'
import { startOllamaServe } from '../../src/core/engine/ollama-serve.js'
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
  const server = await startOllamaServe({
    binary: required(rig().ollama, 'ollama'),
    env: { OLLAMA_NOPRUNE: '1', OLLAMA_KEEP_ALIVE: '10m' },
  })
  return {
    url: server.url,
    create: (name, gguf) => server.create(name, gguf, { parameters: { num_ctx: 2048 } }),
    stop: () => server.stop(),
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
