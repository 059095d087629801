import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import { request } from 'undici'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { freePort } from '../../src/core/process/supervise.js'
import type { VeloStatus } from '../../src/proxy/status-types.js'
import { VELO_BIN } from '../helpers/cli.js'
import { lacks, required, rig } from '../helpers/rig.js'
import { type FakeVelo, startFakeVelo } from '../unit/ui-fake-velo.js'
import { busyStatus } from '../unit/ui-fixtures.js'

// The live view of `velo top` in a real terminal: tmux runs it, `send-keys` types, `capture-pane`
// reads the screen. The server is a stand-in that serves the /velo/status contract and records the
// admin calls, so the test can change the figures and see the screen follow.
const SESSION = 'top'
// A tmux server per run of velo: a new session right after kill-server can race its exit. Their
// sockets live in a temporary folder that is removed at the end.
let runs = 0
let socket = ''
let socketDir = ''

// The tmux server, and so velo top, gets only these: no CI, NO_COLOR or FORCE_COLOR from the runner
// (a CI variable of any value turns chalk's colors off, and a set CI switches velo to summary lines).
const TMUX_ENV: Record<string, string> = { LANG: 'C.UTF-8', TERM: 'xterm-256color' }
for (const key of ['PATH', 'HOME', 'XDG_CACHE_HOME', 'XDG_CONFIG_HOME', 'VELO_HOME', 'TMPDIR']) {
  const value = process.env[key]
  if (value !== undefined) TMUX_ENV[key] = value
}

async function tmux(...args: string[]): Promise<string> {
  const { stdout } = await execa('tmux', ['-S', socket, '-f', '/dev/null', ...args], {
    env: TMUX_ENV,
    extendEnv: false,
  })
  return stdout
}

/**
 * Run `velo <args>` in a shell in a new tmux pane, the way a user would: when it ends the shell
 * prints its exit status and stays, so the test can see what velo left of the terminal.
 */
async function startVelo(args: string, size: { x: number; y: number }, env: Record<string, string> = {}) {
  runs += 1
  socket = join(socketDir, String(runs))
  const vars = Object.entries(env).flatMap(([key, value]) => ['-e', `${key}=${value}`])
  const name = args.split(' ')[0]
  const command = `'${process.execPath}' '${VELO_BIN}' ${args}; echo "velo ${name} exited $?"; exec sleep 600`
  await tmux('new-session', '-d', '-s', SESSION, '-x', String(size.x), '-y', String(size.y), ...vars, command)
}

const startTop = (url: string, size: { x: number; y: number }, env: Record<string, string> = {}) =>
  startVelo(`top --url ${url}`, size, env)

// Any SGR sequence, and one that sets a foreground color; capture-pane -e writes them for styled cells.
const SGR = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`)
const FOREGROUND = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*3[1-6]m`)

const screen = (escapes = false, target = SESSION) =>
  tmux('capture-pane', '-p', ...(escapes ? ['-e'] : []), '-t', target)
const pane = (format: string) => tmux('display-message', '-p', '-t', SESSION, format)
const keys = (...names: string[]) => tmux('send-keys', '-t', SESSION, ...names)

async function waitForScreen(
  test: (text: string) => boolean,
  what: string,
  options: { target?: string; timeout?: number } = {},
): Promise<string> {
  let last = ''
  await vi.waitFor(
    async () => {
      last = await screen(false, options.target)
      if (!test(last)) throw new Error(`screen never showed ${what}:\n${last}`)
    },
    { timeout: options.timeout ?? 20_000, interval: 200 },
  )
  return last
}

/** The header's tokens/s (`154 tok/s`, `12.3k tok/s`) on a dashboard screen. */
function headerTokensPerSecond(text: string): number {
  const found = /\s([\d.]+)(k|M)? tok\/s\s/.exec(text)
  if (!found) throw new Error(`no tok/s in the header:\n${text}`)
  return Number(found[1]) * (found[2] === 'k' ? 1e3 : found[2] === 'M' ? 1e6 : 1)
}

/** The llama-server processes started for `model` (a path only this test uses). */
async function llamaServersFor(model: string): Promise<string[]> {
  const { stdout } = await execa('pgrep', ['-f', `llama-server.* ${model}`], { reject: false })
  return stdout.split('\n').filter((line) => line.trim() !== '')
}

function withModel(
  status: VeloStatus,
  id: string,
  change: Partial<VeloStatus['models'][number]>,
): VeloStatus {
  return {
    ...status,
    models: status.models.map((model) => (model.id === id ? { ...model, ...change } : model)),
  }
}

let fake: FakeVelo
beforeAll(async () => {
  socketDir = await mkdtemp(join(tmpdir(), 'velo-tmux-'))
  fake = await startFakeVelo({ status: busyStatus(), intervalMs: 250 })
})
afterEach(async () => {
  await tmux('kill-server').catch(() => '')
})
afterAll(async () => {
  await fake.close()
  await rm(socketDir, { recursive: true, force: true })
})

describe('velo top under tmux', () => {
  it('shows the figures, follows them, sends the keys to velo and restores the terminal on q', async () => {
    fake.status = withModel(busyStatus(), 'velo-tiny', { state: 'unloaded', slotsBusy: 0, queueDepth: 0 })
    fake.calls.length = 0
    await startTop(fake.url, { x: 80, y: 24 })
    let text = await waitForScreen((s) => /velo-tiny\s+unloaded/.test(s), 'velo-tiny unloaded')
    expect(await pane('#{alternate_on}')).toBe('1')
    expect(text).toContain('127.0.0.1:8000  up 1h02m  3.2 req/s  154 tok/s  cache 42%  errors 3')
    expect(text).toContain('UPSTREAMS 1/2 healthy  ERRORS 1')
    expect(text).toMatch(/✖ openai\s+http:\/\/gpu-box:8080\/v1\s+down: connect ECONNREFUSED/)
    expect(text).toMatch(/gpu-box-model\s+127\.0\.0\.1\s+502/)
    for (const line of text.split('\n')) expect([...line].length).toBeLessThanOrEqual(80)
    expect(text.split('\n')[22]).toContain('q quit')

    // The model loads and takes load: state, slots, queue and tokens/s follow on screen.
    fake.status = withModel({ ...busyStatus(), tokensPerSecond: 321 }, 'velo-tiny', {
      state: 'ready',
      slotsBusy: 4,
      queueDepth: 12,
      generationTokensPerSecond: 298,
    })
    text = await waitForScreen((s) => /velo-tiny\s+ready\s+4\/4\s+12\s+3\.2\s+298/.test(s), 'the busy model')
    expect(text).toContain('321 tok/s')

    await keys('u')
    await vi.waitFor(() =>
      expect(fake.calls.map((call) => call.path)).toContain('/velo/models/velo-tiny/unload'),
    )
    await waitForScreen((s) => s.includes('unloaded velo-tiny'), 'the unload notice')

    await keys('Down', 'p')
    await vi.waitFor(() =>
      expect(fake.calls.map((call) => call.path)).toContain('/velo/models/qwen2.5%3A7b/pause'),
    )
    await keys('c')
    await vi.waitFor(() => expect(fake.calls.map((call) => call.path)).toContain('/velo/cache/clear'))

    await keys('?')
    await waitForScreen((s) => s.includes('unload the selected model'), 'the help')
    await keys('Escape')
    await waitForScreen((s) => !s.includes('unload the selected model'), 'the dashboard again')

    await keys('q')
    const after = await waitForScreen((s) => s.includes('velo top exited'), 'velo top ending')
    expect(after).toContain('velo top exited 0')
    expect(after).not.toContain('velo-tiny')
    expect(await pane('#{alternate_on} #{cursor_flag}')).toBe('0 1')
  })

  it('shows disconnected while velo is gone and picks up again when it is back', async () => {
    const gone = await startFakeVelo({ status: busyStatus(), intervalMs: 250 })
    await startTop(gone.url, { x: 80, y: 24 })
    await waitForScreen((s) => s.includes('velo-tiny'), 'the models')
    await gone.close()
    // The first failure is the stream ending; the retries find nothing listening.
    const text = await waitForScreen(
      (s) => /disconnected \(retry \d+\): .*ECONNREFUSED/.test(s),
      'disconnected',
    )
    expect(text).toContain('velo-tiny')
    const back = await startFakeVelo({
      status: { ...busyStatus(), listen: '127.0.0.1:9999' },
      intervalMs: 250,
      port: gone.port,
    })
    try {
      await waitForScreen((s) => s.includes('● 127.0.0.1:9999') && !s.includes('disconnected'), 'reconnected')
    } finally {
      await back.close()
    }
  })

  it('restores the terminal when it is sent SIGTERM', async () => {
    fake.status = busyStatus()
    await startTop(fake.url, { x: 80, y: 24 })
    await waitForScreen((s) => s.includes('velo-tiny'), 'the models')
    expect(await pane('#{alternate_on} #{cursor_flag}')).toBe('1 0')
    // The pane runs a shell; velo top is its child.
    const { stdout } = await execa('pgrep', ['-P', await pane('#{pane_pid}'), '-f', 'run.js top'])
    process.kill(Number(stdout.trim()), 'SIGTERM')
    const after = await waitForScreen((s) => s.includes('velo top exited'), 'velo top ending')
    expect(after).not.toContain('velo-tiny')
    expect(await pane('#{alternate_on} #{cursor_flag}')).toBe('0 1')
  })

  it('uses a wide terminal and draws no color under NO_COLOR', async () => {
    fake.status = busyStatus()
    await startTop(fake.url, { x: 160, y: 30 }, { NO_COLOR: '1' })
    const text = await waitForScreen((s) => s.includes('velo-tiny'), 'the models')
    expect(text).toMatch(/MODEL\s+KIND\s+STATE/)
    expect(text).toMatch(/TIME .*CACHE\s+UPSTREAMS 1\/2 healthy/)
    expect(await screen(true)).not.toMatch(SGR)
    await tmux('kill-server')
    await startTop(fake.url, { x: 160, y: 30 })
    await waitForScreen((s) => s.includes('velo-tiny'), 'the models')
    expect(await screen(true)).toMatch(FOREGROUND)
  })
})

// How velo serve decides between the dashboard and log lines on a real terminal. No model needed.
describe('velo serve on a terminal, with and without the dashboard', () => {
  let dir: string
  let config: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'velo-tui-plain-'))
    config = join(dir, 'velo.yaml')
    await writeFile(config, '')
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })
  const serve = async (extra: string, env: Record<string, string> = {}) => {
    const port = await freePort()
    await startVelo(
      `serve --config ${config} --port ${port} --no-detect-ollama ${extra}`,
      { x: 100, y: 30 },
      env,
    )
    return port
  }

  for (const [name, extra, env] of [
    ['--no-tui', '--no-tui', {}],
    // Ink draws nothing live when it reads CI this way, so a dashboard here would be a blank screen.
    ['CONTINUOUS_INTEGRATION=1', '', { CONTINUOUS_INTEGRATION: '1' }],
    ['an empty CI', '', { CI: '' }],
  ] as const) {
    it(`prints plain log lines on the main screen with ${name}`, async () => {
      const port = await serve(extra, env)
      const text = await waitForScreen((s) => s.includes('listening on'), 'the listening line')
      expect(text).toContain(`velo serve listening on http://127.0.0.1:${port}`)
      expect(await pane('#{alternate_on}')).toBe('0')
      await keys('C-c')
      const after = await waitForScreen((s) => s.includes('velo serve exited'), 'velo serve ending')
      expect(after).toContain('velo serve exited 0')
    })
  }

  it('draws the dashboard when only stdin is not a terminal; Ctrl-C still stops it', async () => {
    const port = await serve('< /dev/null')
    const text = await waitForScreen((s) => s.includes('keys off: stdin is not a terminal'), 'the dashboard')
    expect(text).toContain(`127.0.0.1:${port}`)
    expect(await pane('#{alternate_on}')).toBe('1')
    await keys('C-c')
    const after = await waitForScreen((s) => s.includes('velo serve exited'), 'velo serve ending')
    expect(after).toContain('velo serve exited 0')
    expect(await pane('#{alternate_on} #{cursor_flag}')).toBe('0 1')
  })
})

// The whole stack: velo serve's own dashboard in front of the rig's llama-server (velo's managed
// engine with the tiny synthetic model), driven by real requests, with velo top attached beside it.
describe.skipIf(lacks('llama-server'))('velo serve dashboard under tmux', () => {
  let dir: string
  const load = new AbortController()
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'velo-tui-serve-'))
  })
  afterAll(async () => {
    load.abort()
    await rm(dir, { recursive: true, force: true })
  })

  /** One streamed chat completion, read to the end; resolves with its HTTP status. */
  async function chat(url: string): Promise<number> {
    const response = await request(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'velo-tiny',
        messages: [{ role: 'user', content: 'Tell me a long story.' }],
        max_tokens: 400,
        stream: true,
      }),
      signal: load.signal,
    })
    for await (const _chunk of response.body) {
      // Read the stream to its end, as a client does.
    }
    return response.statusCode
  }

  it('shows the model load, take a queue and tokens/s, and unload on u; velo top shows the same', {
    timeout: 400_000,
  }, async () => {
    // The rig's model under a path of this test's own, so that its llama-server can be told apart
    // from those of other tests running at the same time.
    const model = join(dir, 'velo-tiny.gguf')
    await symlink(required(rig().tinyModel, 'tiny model'), model)
    const config = join(dir, 'velo.yaml')
    await writeFile(config, '')
    const port = await freePort()
    const url = `http://127.0.0.1:${port}`
    await startVelo(`serve --config ${config} --model ${model} --port ${port}`, { x: 100, y: 30 })
    const idle = await waitForScreen((s) => /velo-tiny\s+managed\s+unloaded/.test(s), 'velo-tiny unloaded', {
      timeout: 60_000,
    })
    expect(headerTokensPerSecond(idle)).toBe(0)
    // velo top in a second window of the same tmux server, attached over HTTP.
    await tmux(
      'new-window',
      '-d',
      '-t',
      SESSION,
      '-n',
      'top',
      `'${process.execPath}' '${VELO_BIN}' top --url ${url}`,
    )
    const topWindow = `${SESSION}:top`
    await waitForScreen((s) => /velo-tiny\s+managed\s+unloaded/.test(s), 'velo top: unloaded', {
      target: topWindow,
    })

    // More concurrent streams than llama-server has slots: the model loads, every slot is busy and
    // the rest wait in velo's queue.
    const requests = Array.from({ length: 12 }, () => chat(url))
    const busy = /velo-tiny\s+managed\s+ready\s+(\d+)\/(\d+)\s+(\d+)\s+\S+\s+(\d+)/
    const busyWithQueue = (s: string) => {
      const row = busy.exec(s)
      return row !== null && Number(row[1]) > 0 && Number(row[3]) > 0
    }
    // Slots fill one by one as the model comes up: wait for the frame with every slot taken.
    const fullWithQueue = (s: string) => busyWithQueue(s) && busy.exec(s)?.[1] === busy.exec(s)?.[2]
    // Both screens while the load runs: velo top reads the same figures over HTTP.
    const [loaded, topLoaded] = await Promise.all([
      waitForScreen(fullWithQueue, 'every slot busy and a queue', { timeout: 90_000 }),
      waitForScreen(busyWithQueue, 'velo top: a busy model with a queue', {
        target: topWindow,
        timeout: 90_000,
      }),
    ])
    const topRow = busy.exec(topLoaded)
    expect(Number(topRow?.[3])).toBeGreaterThan(0)
    expect(Number(topRow?.[2])).toBe(Number(busy.exec(loaded)?.[2]))
    // Its llama-server runs under this test's model path.
    expect(await llamaServersFor(model)).toHaveLength(1)
    const flowing = await waitForScreen((s) => headerTokensPerSecond(s) > 0, 'tokens/s', { timeout: 60_000 })
    // VELO_TUI_CAPTURE=FILE keeps this screen, the dashboard under load, for docs/serve.md.
    const capture = process.env['VELO_TUI_CAPTURE']
    if (capture) await writeFile(capture, `${flowing.trimEnd()}\n`)
    await waitForScreen(
      (s) => /velo-tiny\s+managed\s+ready/.test(s) && headerTokensPerSecond(s) > 0,
      'velo top: tokens/s',
      { target: topWindow, timeout: 60_000 },
    )

    expect(await Promise.all(requests)).toEqual(Array(12).fill(200))
    await waitForScreen((s) => /velo-tiny\s+managed\s+ready\s+0\/\d+\s+0/.test(s), 'the queue drained', {
      timeout: 60_000,
    })
    await waitForScreen((s) => /\s200\s/.test(s), 'the finished requests')

    await keys('u')
    await waitForScreen((s) => /velo-tiny\s+managed\s+unloaded/.test(s), 'velo-tiny unloaded again', {
      timeout: 60_000,
    })
    await waitForScreen((s) => /velo-tiny\s+managed\s+unloaded/.test(s), 'velo top: unloaded again', {
      target: topWindow,
    })

    await vi.waitFor(async () => expect(await llamaServersFor(model)).toEqual([]), { timeout: 30_000 })

    // Loaded again with l, then q: velo stops its llama-server on the way out.
    await keys('l')
    await waitForScreen((s) => /velo-tiny\s+managed\s+ready/.test(s), 'velo-tiny loaded by l', {
      timeout: 60_000,
    })
    expect(await llamaServersFor(model)).toHaveLength(1)
    await keys('q')
    const after = await waitForScreen((s) => s.includes('velo serve exited'), 'velo serve ending', {
      timeout: 60_000,
    })
    expect(after).toContain('velo serve exited 0')
    expect(await pane('#{alternate_on} #{cursor_flag}')).toBe('0 1')
    expect(await llamaServersFor(model)).toEqual([])
    // velo top saw it go.
    await waitForScreen((s) => s.includes('disconnected (retry'), 'velo top: disconnected', {
      target: topWindow,
    })
  })
})
