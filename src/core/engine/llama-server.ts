import { cpus } from 'node:os'
import { request } from 'undici'
import { VeloError } from '../errors.js'
import {
  freePort,
  NotReadyError,
  type SupervisedProcess,
  spawnSupervised,
  waitUntil,
} from '../process/supervise.js'

export interface LlamaServerOptions {
  serverPath: string
  model: string
  host?: string
  port?: number
  /** Extra llama-server arguments (a profile's or the user's). */
  args?: string[]
  /** Served model name (`--alias`). */
  alias?: string
  env?: NodeJS.ProcessEnv
  startTimeoutMs?: number
  onLine?: (line: string) => void
  /** Called with the process as soon as it is spawned, before it is healthy (to report or stop it). */
  onSpawn?: (process: SupervisedProcess) => void
}

export interface LlamaServer {
  url: string
  port: number
  process: SupervisedProcess
  stop(): Promise<void>
}

/** Whether llama-server's /health says the model is loaded (503 while loading). */
export async function llamaServerHealthy(url: string): Promise<boolean> {
  const response = await request(`${url}/health`, { headersTimeout: 2000, bodyTimeout: 2000 })
  await response.body.dump()
  return response.statusCode === 200
}

function hasFlag(args: string[], ...names: string[]): boolean {
  return args.some((arg) => names.includes(arg))
}

/** Start llama-server on a free port and wait until its model is loaded. */
export async function startLlamaServer(options: LlamaServerOptions): Promise<LlamaServer> {
  const host = options.host ?? '127.0.0.1'
  const port = options.port ?? (await freePort(host))
  const extra = options.args ?? []
  const args = ['--model', options.model, '--host', host, '--port', String(port), ...extra]
  if (options.alias && !hasFlag(extra, '--alias', '-a')) args.push('--alias', options.alias)
  if (!hasFlag(extra, '--threads', '-t')) args.push('--threads', String(Math.max(1, cpus().length)))
  const proc = spawnSupervised(options.serverPath, args, { env: options.env, onLine: options.onLine })
  options.onSpawn?.(proc)
  const url = `http://${host}:${port}`
  const timeoutMs = options.startTimeoutMs ?? 120_000
  try {
    await waitUntil(() => llamaServerHealthy(url), {
      timeoutMs,
      process: proc,
      what: `llama-server (${options.model})`,
    })
  } catch (error) {
    // Never leave a server that did not come up behind: SIGTERM, SIGKILL a second later.
    await proc.stop(1000)
    throw notStarted(options.model, proc.pid, timeoutMs, error)
  }
  return { url, port, process: proc, stop: () => proc.stop() }
}

/** Why llama-server did not come up, with the last lines it wrote. */
function notStarted(model: string, pid: number, timeoutMs: number, error: unknown): VeloError {
  if (error instanceof NotReadyError && error.reason === 'timeout') {
    const tail = error.output.trim() ? `:\n${error.output}` : ''
    return new VeloError(
      'VELO_PROCESS_FAILED',
      `llama-server (${model}) was not healthy within ${timeoutMs} ms; velo stopped it (pid ${pid})${tail}`,
      { suggestion: 'raise the start timeout, or check the model file and its arguments', cause: error },
    )
  }
  return new VeloError('VELO_PROCESS_FAILED', error instanceof Error ? error.message : String(error), {
    suggestion: 'check the model file and the llama-server arguments',
    cause: error,
  })
}
