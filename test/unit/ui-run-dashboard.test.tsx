import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { execa } from 'execa'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'

// Ink draws nothing live when it believes it runs in CI; these tests draw on a fake terminal.
vi.hoisted(() => {
  process.env['CI'] = '0'
})

import type { VeloStatus } from '../../src/proxy/status-types.js'
import { RESTORE_TERMINAL, runDashboard } from '../../src/ui/run-dashboard.js'
import { createPollingSource, type DashboardActions } from '../../src/ui/source.js'
import { busyStatus } from './ui-fixtures.js'
import { FakeKeyboard, FakeTerminal } from './ui-render.js'

const ENTER_ALT_SCREEN = '\x1b[?1049h'

const noActions: DashboardActions = {
  unload: async () => {},
  load: async () => {},
  pause: async () => {},
  resume: async () => {},
  clearCache: async () => {},
}

function start() {
  const stdout = new FakeTerminal(80, 24)
  const stdin = new FakeKeyboard()
  const source = createPollingSource(() => busyStatus())
  const handle = runDashboard({
    source,
    actions: noActions,
    stdout: stdout as unknown as NodeJS.WriteStream,
    stdin: stdin as unknown as NodeJS.ReadStream,
    color: false,
  })
  const output = () => stdout.frames.join('')
  return { stdout, stdin, source, handle, output }
}

describe('runDashboard', () => {
  it('draws on the alternate screen and restores the terminal when the user quits', async () => {
    const { stdin, handle, output, source } = start()
    await vi.waitFor(() => expect(output()).toContain('velo-tiny'))
    expect(output().startsWith(ENTER_ALT_SCREEN)).toBe(true)
    expect(stdin.rawMode).toContain(true)
    stdin.write('q')
    await expect(handle.closed).resolves.toEqual({ reason: 'quit' })
    expect(output().endsWith(RESTORE_TERMINAL)).toBe(true)
    expect(stdin.rawMode.at(-1)).toBe(false)
    source.close?.()
  })

  it('restores the terminal on close() and leaves no signal handlers behind', async () => {
    const before = process.listenerCount('SIGTERM')
    const { handle, output, source } = start()
    expect(process.listenerCount('SIGTERM')).toBe(before + 1)
    await vi.waitFor(() => expect(output()).toContain('velo-tiny'))
    handle.close()
    await expect(handle.closed).resolves.toEqual({ reason: 'closed' })
    expect(output().endsWith(RESTORE_TERMINAL)).toBe(true)
    expect(process.listenerCount('SIGTERM')).toBe(before)
    source.close?.()
  })

  // A file or pipe on stdin (`velo serve < /dev/null`) has no isTTY at all, not false.
  it.each([
    ['false', false],
    ['undefined, as for a file or a pipe', undefined],
  ])('still draws when stdin is not a terminal, isTTY %s (the keys are off)', async (_, isTTY) => {
    const stdout = new FakeTerminal(80, 24)
    const stdin = new FakeKeyboard()
    ;(stdin as { isTTY: boolean | undefined }).isTTY = isTTY
    let shown = busyStatus()
    const source = createPollingSource(() => shown)
    const handle = runDashboard({
      source,
      actions: noActions,
      stdout: stdout as unknown as NodeJS.WriteStream,
      stdin: stdin as unknown as NodeJS.ReadStream,
      color: false,
    })
    await vi.waitFor(() => expect(stdout.frames.join('')).toContain('velo-tiny'))
    // New figures, drawn after the keys were set up: a failure there (raw mode) would show by now.
    shown = { ...busyStatus(), listen: '127.0.0.1:9999' }
    source.notify()
    await vi.waitFor(() => expect(stdout.frames.join('')).toContain('127.0.0.1:9999'))
    expect(stdout.frames.join('')).not.toContain('Raw mode is not supported')
    expect(stdout.frames.join('')).toContain('keys off: stdin is not a terminal  Ctrl-C quits')
    expect(stdin.rawMode).toEqual([])
    handle.close()
    await expect(handle.closed).resolves.toEqual({ reason: 'closed' })
    source.close?.()
  })

  it('restores the terminal and rejects when a view crashes', async () => {
    const stdout = new FakeTerminal(80, 24)
    const stdin = new FakeKeyboard()
    // A snapshot a view cannot draw (no `recent` list): the view throws while rendering.
    const broken = { ...busyStatus(), recent: null } as unknown as VeloStatus
    let reads = 0
    const handle = runDashboard({
      source: {
        snapshot: () => {
          reads += 1
          return reads > 2 ? broken : busyStatus()
        },
        subscribe: (listener) => {
          const timer = setInterval(listener, 20)
          return () => clearInterval(timer)
        },
      },
      actions: noActions,
      stdout: stdout as unknown as NodeJS.WriteStream,
      stdin: stdin as unknown as NodeJS.ReadStream,
      color: false,
      refreshMs: 10,
    })
    await expect(handle.closed).rejects.toThrow()
    expect(stdout.frames.join('')).toContain(RESTORE_TERMINAL)
  })
})

// A crash anywhere in the process, or a signal, must leave the user's terminal usable. These run
// in a child process, since they end it.
describe('runDashboard in a process that crashes or is signalled', () => {
  let dir: string
  let script: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'velo-ui-'))
    script = join(dir, 'child.mts')
    const src = (path: string) => fileURLToPath(new URL(`../../src/ui/${path}`, import.meta.url))
    const fixtures = fileURLToPath(new URL('./ui-fixtures.ts', import.meta.url))
    const render = fileURLToPath(new URL('./ui-render.ts', import.meta.url))
    await writeFile(
      script,
      `import { runDashboard } from ${JSON.stringify(src('run-dashboard.tsx'))}
import { createPollingSource } from ${JSON.stringify(src('source.ts'))}
import { busyStatus } from ${JSON.stringify(fixtures)}
import { FakeKeyboard } from ${JSON.stringify(render)}
const noop = async () => {}
const source = createPollingSource(() => busyStatus())
const handle = runDashboard({
  source,
  actions: { unload: noop, load: noop, pause: noop, resume: noop, clearCache: noop },
  stdin: new FakeKeyboard() as unknown as NodeJS.ReadStream,
  color: false,
})
// Something to keep the process alive, as serve's listener or top's stream does.
const alive = setInterval(() => {}, 1000)
handle.closed.then((exit) => {
  process.stderr.write('closed ' + JSON.stringify(exit) + '\\n')
  clearInterval(alive)
  source.close?.()
})
process.stderr.write('drawing\\n')
if (process.argv[2] === 'crash') setTimeout(() => { throw new Error('boom from somewhere else') }, 300)
`,
    )
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  const child = (mode: string) =>
    execa(process.execPath, ['--import', 'tsx', script, mode], {
      reject: false,
      env: { CI: '0', NO_COLOR: '1' },
      timeout: 30_000,
    })

  it('restores the terminal before Node prints an uncaught exception', async () => {
    const result = await child('crash')
    expect(result.exitCode).toBe(1)
    expect(result.stdout.startsWith(ENTER_ALT_SCREEN)).toBe(true)
    expect(result.stdout).toContain('velo-tiny')
    expect(result.stdout.endsWith(RESTORE_TERMINAL)).toBe(true)
    expect(result.stderr).toContain('boom from somewhere else')
  })

  it('restores the terminal on SIGTERM and tells the caller', async () => {
    const running = child('signal')
    await new Promise<void>((resolve) => {
      running.stderr?.on('data', (chunk: Buffer) => {
        if (chunk.toString().includes('drawing')) resolve()
      })
    })
    running.kill('SIGTERM')
    const result = await running
    expect(result.stderr).toContain('closed {"reason":"signal","signal":"SIGTERM"}')
    expect(result.stdout.endsWith(RESTORE_TERMINAL)).toBe(true)
    expect(result.exitCode).toBe(0)
  })
})
