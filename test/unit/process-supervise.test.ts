import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { execa, type ResultPromise } from 'execa'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import {
  NotReadyError,
  type SupervisedProcess,
  spawnSupervised,
  waitUntil,
} from '../../src/core/process/supervise.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const SUPERVISE = pathToFileURL(join(ROOT, 'src/core/process/supervise.ts')).href

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

function gone(pids: number[], what: string): Promise<void> {
  return waitUntil(async () => pids.every((pid) => !alive(pid)), { timeoutMs: 15_000, intervalMs: 50, what })
}

/** A shell that starts a grandchild in its group, prints the grandchild's pid and waits. */
function withGrandchild(ignoreTerm: boolean): SupervisedProcess & { grandchild: Promise<number> } {
  let found: (pid: number) => void = () => undefined
  const grandchild = new Promise<number>((resolve) => {
    found = resolve
  })
  const trap = ignoreTerm ? "trap '' TERM; " : ''
  const proc = spawnSupervised('sh', ['-c', `${trap}sleep 1000 & echo $!; wait`], {
    onLine: (line) => found(Number(line)),
  })
  return Object.assign(proc, { grandchild })
}

describe('supervised processes', () => {
  const started: SupervisedProcess[] = []
  afterEach(async () => {
    await Promise.all(started.splice(0).map((proc) => proc.stop(100)))
  })

  it('stops the whole process group with SIGTERM', async () => {
    const proc = withGrandchild(false)
    started.push(proc)
    const grandchild = await proc.grandchild
    expect(alive(grandchild)).toBe(true)
    await proc.stop(10_000)
    expect(await proc.exited).toBe('SIGTERM')
    await gone([proc.pid, grandchild], 'the group to go')
  })

  it('SIGKILLs a process that ignores SIGTERM once the grace period is over', async () => {
    const proc = withGrandchild(true)
    started.push(proc)
    const grandchild = await proc.grandchild
    await proc.stop(300)
    expect(await proc.exited).toBe('SIGKILL')
    await gone([proc.pid, grandchild], 'the group to go')
  })

  it('takes what the leader started down when the leader dies on its own', async () => {
    const proc = withGrandchild(false)
    started.push(proc)
    const grandchild = await proc.grandchild
    process.kill(proc.pid, 'SIGKILL')
    await proc.exited
    await gone([grandchild], 'the grandchild to go')
  })

  it('says why a process never became ready: it exited, or the timeout passed', async () => {
    const quitter = spawnSupervised('sh', ['-c', 'echo cannot load model; exit 3'])
    started.push(quitter)
    const exited = await waitUntil(async () => false, {
      timeoutMs: 30_000,
      process: quitter,
      what: 'quitter',
    })
      .then(() => undefined)
      .catch((error: unknown) => error)
    expect(exited).toBeInstanceOf(NotReadyError)
    expect(exited).toMatchObject({ reason: 'exited', output: 'cannot load model' })
    expect(String(exited)).toMatch(/quitter exited \(3\) before it was ready/)

    const sleeper = spawnSupervised('sleep', ['1000'])
    started.push(sleeper)
    const timedOut = await waitUntil(async () => false, { timeoutMs: 200, process: sleeper, what: 'sleeper' })
      .then(() => undefined)
      .catch((error: unknown) => error)
    expect(timedOut).toMatchObject({ reason: 'timeout' })
    expect(String(timedOut)).toMatch(/sleeper was not ready after 200 ms/)
  })
})

describe('no orphans when velo dies', () => {
  let dir: string
  let parent: ResultPromise | undefined
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'velo-reaper-'))
  })
  afterEach(() => {
    parent?.kill('SIGKILL')
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  /** A node process standing in for velo: starts a supervised group, reports its pids, runs on. */
  async function startParent(script: string): Promise<{ child: number; grandchild: number; reaper: number }> {
    const file = join(dir, `parent-${Date.now()}.mjs`)
    await writeFile(file, script)
    const proc = execa(process.execPath, ['--import', 'tsx', file], { cwd: ROOT, reject: false })
    parent = proc
    const line = await new Promise<string>((resolve, reject) => {
      proc.stdout?.once('data', (chunk: Buffer) => resolve(chunk.toString('utf8')))
      void proc.then((result) => reject(new Error(`parent exited: ${result.stderr}`)))
    })
    return JSON.parse(line) as { child: number; grandchild: number; reaper: number }
  }

  const script = (after: string): string => `
import { reaperPid, spawnSupervised } from '${SUPERVISE}'
const proc = spawnSupervised('sh', ['-c', 'sleep 1000 & echo $!; wait'], {
  onLine: (line) => {
    process.stdout.write(JSON.stringify({ child: proc.pid, grandchild: Number(line), reaper: reaperPid() }) + '\\n')
    ${after}
  },
})
`

  it('takes the children’s groups down when velo is SIGKILLed (no exit hook runs)', async () => {
    const pids = await startParent(script('setInterval(() => {}, 1000)'))
    expect(alive(pids.child) && alive(pids.grandchild) && alive(pids.reaper)).toBe(true)
    parent?.kill('SIGKILL')
    await gone([pids.child, pids.grandchild, pids.reaper], 'the children and the reaper to go')
  })

  it('lets velo end on its own once its children stopped: the reaper holds no event loop', async () => {
    const pids = await startParent(script('void proc.stop(1000)'))
    const result = await parent
    expect(result?.exitCode).toBe(0)
    await gone([pids.child, pids.grandchild, pids.reaper], 'the children and the reaper to go')
  })
})
