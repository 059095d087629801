import { type ChildProcess, spawn } from 'node:child_process'
import { createServer } from 'node:net'

export interface SupervisedProcess {
  readonly child: ChildProcess
  readonly pid: number
  /** The last lines the process wrote (stdout and stderr), for error messages. */
  output(): string
  /** Resolves with the exit code (or signal name) once the process has exited. */
  readonly exited: Promise<number | string>
  /** SIGTERM to the whole process group, SIGKILL after the grace period. */
  stop(graceMs?: number): Promise<void>
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv
  cwd?: string
  /** Keep this many lines of output for diagnostics. */
  keepLines?: number
  onLine?: (line: string) => void
}

const live = new Set<SupervisedProcess>()
let exitHookInstalled = false

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal)
  } catch {
    // The group is already gone.
  }
}

/** On any exit of velo (or a test run), take every child's process group down with it. */
function installExitHook(): void {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.on('exit', () => {
    for (const proc of live) killGroup(proc.pid, 'SIGKILL')
  })
}

/** Start a process in its own process group so that it and all its children can be stopped together. */
export function spawnSupervised(
  command: string,
  args: string[],
  options: SpawnOptions = {},
): SupervisedProcess {
  installExitHook()
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const keep = options.keepLines ?? 60
  const lines: string[] = []
  let partial = ''
  const collect = (chunk: Buffer): void => {
    const text = partial + chunk.toString('utf8')
    const parts = text.split('\n')
    partial = parts.pop() ?? ''
    for (const line of parts) {
      lines.push(line)
      if (lines.length > keep) lines.shift()
      options.onLine?.(line)
    }
  }
  child.stdout?.on('data', collect)
  child.stderr?.on('data', collect)
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'))
    child.once('error', (error) => {
      lines.push(String(error))
      resolve('spawn-error')
    })
  })
  if (child.pid === undefined) {
    // spawn failed synchronously (ENOENT); `exited` resolves through the error event.
  }
  const pid = child.pid ?? -1
  let stopping: Promise<void> | undefined
  const proc: SupervisedProcess = {
    child,
    pid,
    exited,
    output: () => [...lines, partial].filter(Boolean).join('\n'),
    stop(graceMs = 5000) {
      stopping ??= (async () => {
        if (child.exitCode !== null || child.signalCode !== null || pid < 0) return
        killGroup(pid, 'SIGTERM')
        const timer = setTimeout(() => killGroup(pid, 'SIGKILL'), graceMs)
        await exited
        clearTimeout(timer)
        // Children of the child may linger in the group after the leader exits.
        killGroup(pid, 'SIGKILL')
      })()
      return stopping
    },
  }
  live.add(proc)
  void exited.then(() => live.delete(proc))
  return proc
}

/** Every process started through spawnSupervised that is still running. */
export function liveProcesses(): SupervisedProcess[] {
  return [...live]
}

/** A port nothing listens on right now (the OS picks it). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.once('error', reject)
    server.listen(0, host, () => {
      const address = server.address()
      const port = typeof address === 'object' && address ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

/** Poll until `probe` resolves true, the process dies, or the timeout passes. */
export async function waitUntil(
  probe: () => Promise<boolean>,
  options: { timeoutMs: number; intervalMs?: number; process?: SupervisedProcess; what: string },
): Promise<void> {
  const deadline = Date.now() + options.timeoutMs
  let died: number | string | undefined
  void options.process?.exited.then((code) => {
    died = code
  })
  while (Date.now() < deadline) {
    if (died !== undefined) {
      throw new Error(
        `${options.what} exited (${died}) before it was ready:\n${options.process?.output() ?? ''}`,
      )
    }
    if (await probe().catch(() => false)) return
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 100))
  }
  throw new Error(
    `${options.what} was not ready after ${options.timeoutMs} ms:\n${options.process?.output() ?? ''}`,
  )
}
