import { type ChildProcess, spawn } from 'node:child_process'
import { closeSync, fstatSync, openSync, readSync } from 'node:fs'
import { createServer, Socket } from 'node:net'

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
  /**
   * Send stdout and stderr to this file instead of reading them through pipes (onLine is not
   * called): a chatty child then costs this process nothing; output() reads the file's end.
   */
  outputFile?: string
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

/**
 * The reaper: velo's children must not outlive it, and an exit hook cannot run when velo is
 * SIGKILLed or crashes hard. So one small `sh`, in its own session, reads the process groups to
 * guard from a pipe only velo holds (`+pgid` / `-pgid` lines). However velo dies, the kernel closes
 * its end; the reaper reads EOF and takes every group still listed down (SIGTERM, SIGKILL a second
 * later). `sh`, `kill` and `sleep` are all it needs, so it works alike on Linux and macOS, and the
 * children keep their own pids. Without a working `/bin/sh` velo runs as before: unguarded.
 */
const REAPER_SCRIPT = `trap '' HUP INT
groups=''
while IFS= read -r line; do
  id=\${line#?}
  case $id in ''|*[!0-9]*) continue ;; esac
  case $line in
    +*) groups="$groups $id" ;;
    -*) kept=''; for g in $groups; do [ "$g" = "$id" ] || kept="$kept $g"; done; groups=$kept ;;
  esac
done
[ -z "$groups" ] && exit 0
for g in $groups; do kill -s TERM -- "-$g" 2>/dev/null; done
sleep 1
for g in $groups; do kill -s KILL -- "-$g" 2>/dev/null; done
`

let reaper: ChildProcess | undefined
/** Set once `/bin/sh` could not be started: no further attempts. */
let reaperUnavailable = false

function startReaper(): ChildProcess | undefined {
  if (reaperUnavailable || process.platform === 'win32') return undefined
  const child = spawn('/bin/sh', ['-c', REAPER_SCRIPT], {
    detached: true,
    stdio: ['pipe', 'ignore', 'ignore'],
  })
  const forget = (): void => {
    if (reaper === child) reaper = undefined
  }
  child.once('error', () => {
    reaperUnavailable = true
    forget()
  })
  // A reaper that was killed is started again (with the live groups) at the next spawn.
  child.once('exit', forget)
  child.stdin?.on('error', forget)
  // Neither the reaper nor its pipe may keep velo's event loop alive.
  child.unref()
  if (child.stdin instanceof Socket) child.stdin.unref()
  for (const proc of live) child.stdin?.write(`+${proc.pid}\n`)
  return child
}

/** Tell the reaper to guard (`+`) or forget (`-`) a process group. */
function guard(sign: '+' | '-', pgid: number): void {
  if (sign === '+') reaper ??= startReaper()
  if (reaper?.stdin?.writable) reaper.stdin.write(`${sign}${pgid}\n`)
}

/** The reaper's pid while one runs (tests check that it goes away with velo). */
export function reaperPid(): number | undefined {
  return reaper?.pid
}

/** Start a process in its own process group so that it and all its children can be stopped together. */
export function spawnSupervised(
  command: string,
  args: string[],
  options: SpawnOptions = {},
): SupervisedProcess {
  installExitHook()
  const outputFd = options.outputFile === undefined ? undefined : openSync(options.outputFile, 'a')
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    detached: true,
    stdio: outputFd === undefined ? ['ignore', 'pipe', 'pipe'] : ['ignore', outputFd, outputFd],
  })
  if (outputFd !== undefined) closeSync(outputFd)
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
  // Without a pid the spawn failed (ENOENT); `exited` resolves through the error event.
  const pid = child.pid ?? -1
  let stopping: Promise<void> | undefined
  const proc: SupervisedProcess = {
    child,
    pid,
    exited,
    output: () =>
      options.outputFile === undefined
        ? [...lines, partial].filter(Boolean).join('\n')
        : [...lines, ...fileTail(options.outputFile, keep)].filter(Boolean).join('\n'),
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
  if (pid > 0) {
    live.add(proc)
    guard('+', pid)
    void exited.then(() => {
      live.delete(proc)
      // What the leader started may still run in its group (an engine's runners): not past it.
      killGroup(pid, 'SIGKILL')
      guard('-', pid)
    })
  }
  return proc
}

/** The last `count` lines of a file ([] when it cannot be read). */
function fileTail(file: string, count: number): string[] {
  try {
    const fd = openSync(file, 'r')
    try {
      const size = fstatSync(fd).size
      const length = Math.min(size, 64 * 1024)
      const buffer = Buffer.alloc(length)
      readSync(fd, buffer, 0, length, size - length)
      return buffer
        .toString('utf8')
        .split('\n')
        .slice(-count - 1)
    } finally {
      closeSync(fd)
    }
  } catch {
    return []
  }
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

/** Why a process never became ready: it exited first, or the timeout passed. */
export class NotReadyError extends Error {
  constructor(
    message: string,
    readonly reason: 'exited' | 'timeout',
    /** The last lines the process wrote. */
    readonly output: string,
  ) {
    super(message)
    this.name = 'NotReadyError'
  }
}

/** Poll until `probe` resolves true, the process dies, or the timeout passes (NotReadyError). */
export async function waitUntil(
  probe: () => Promise<boolean>,
  options: { timeoutMs: number; intervalMs?: number; process?: SupervisedProcess; what: string },
): Promise<void> {
  const deadline = Date.now() + options.timeoutMs
  let died: number | string | undefined
  void options.process?.exited.then((code) => {
    died = code
  })
  const output = (): string => options.process?.output() ?? ''
  while (Date.now() < deadline) {
    if (died !== undefined) {
      throw new NotReadyError(
        `${options.what} exited (${died}) before it was ready:\n${output()}`,
        'exited',
        output(),
      )
    }
    if (await probe().catch(() => false)) return
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 100))
  }
  throw new NotReadyError(
    `${options.what} was not ready after ${options.timeoutMs} ms:\n${output()}`,
    'timeout',
    output(),
  )
}
