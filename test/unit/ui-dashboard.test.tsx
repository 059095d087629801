import { afterEach, describe, expect, it, vi } from 'vitest'

// Ink colors through chalk, which reads the level once at import: force it on so that the color
// tests see escape codes and the NO_COLOR test proves the dashboard leaves them out itself.
vi.hoisted(() => {
  process.env['FORCE_COLOR'] = '1'
})

import { Dashboard } from '../../src/ui/Dashboard.js'
import { colorEnabled } from '../../src/ui/Styled.js'
import type { DashboardAction } from '../../src/ui/source.js'
import { busyStatus, modelFixture, statusFixture, upstreamFixture } from './ui-fixtures.js'
import { renderAt } from './ui-render.js'

const ESC = '\x1b'
const DOWN = `${ESC}[B`
const UP = `${ESC}[A`

let unmounts: (() => void)[] = []
afterEach(() => {
  for (const unmount of unmounts) unmount()
  unmounts = []
})

function show(props: Partial<Parameters<typeof Dashboard>[0]> = {}, size = { columns: 80, rows: 24 }) {
  const actions: DashboardAction[] = []
  const instance = renderAt(
    <Dashboard
      status={props.status}
      onAction={(action) => actions.push(action)}
      connection={props.connection}
      notice={props.notice}
      color={props.color ?? false}
    />,
    size,
  )
  unmounts.push(instance.unmount)
  const frame = instance.lastFrame
  const press = async (key: string, until: (frame: string) => boolean = () => true) => {
    instance.stdin.write(key)
    await vi.waitFor(() => expect(until(frame())).toBe(true))
  }
  return { frame, press, actions, instance }
}

function lines(frame: string): string[] {
  return frame.split('\n')
}

describe('Dashboard frames', () => {
  it('shows an empty server: listen address, no models, no requests, no upstreams, the keys', () => {
    const { frame } = show({ status: statusFixture() })
    const text = frame()
    expect(lines(text)[0]).toContain('127.0.0.1:8000')
    expect(text).toContain('up 1h02m')
    expect(text).toContain('3.2 req/s')
    expect(text).toContain('154 tok/s')
    expect(text).toContain('cache 42%')
    expect(text).toContain('errors 0')
    expect(text).toContain('no models yet')
    expect(text).toContain('no requests yet')
    expect(text).toContain('no upstreams configured')
    expect(lines(text).at(-1)).toContain('q quit')
  })

  it('shows a model that is loading, in the table and in the detail line', () => {
    const { frame } = show({
      status: statusFixture({
        models: [modelFixture({ id: 'qwen2.5:7b', kind: 'ollama', state: 'loading', upstream: undefined })],
      }),
    })
    const row = lines(frame()).find((line) => line.includes('qwen2.5:7b') && line.includes('loading'))
    expect(row).toMatch(/^› qwen2\.5:7b\s+loading\s+0\/4\s+0\s+0\s+0\s+-/)
    expect(frame()).toContain('qwen2.5:7b: ollama · not running')
  })

  it('shows a busy model with its queue, rates, TTFT and profile, and the newest requests first', () => {
    const { frame } = show({ status: busyStatus() })
    const text = frame()
    expect(text).toMatch(/› velo-tiny\s+ready\s+4\/4\s+7\s+3\.2\s+154\s+120\/480ms velo-tiny@cp…/)
    expect(text).toContain('errors 3')
    const recent = lines(text).filter((line) => /^\d\d:\d\d:\d\d /.test(line) && line.includes('127.0.0.1'))
    expect(recent.length).toBeGreaterThan(3)
    expect(recent[0]).toMatch(/gpu-box-model\s+127\.0\.0\.1\s+502\s+120ms\s+32\/64\s+850ms miss/)
    // The sparkline draws the 60-second history with its peak.
    expect(text).toMatch(/tok\/s [▁▂▃▄▅▆▇█]{50,} peak 203/)
  })

  it('shows a failed upstream and model, unhealthy first, with the error', async () => {
    const { frame, press } = show({ status: busyStatus() })
    expect(frame()).toContain('UPSTREAMS 1/2 healthy  ERRORS 1')
    const health = lines(frame())
    const down = health.findIndex((line) =>
      line.includes('✖ openai  http://gpu-box:8080/v1  down: connect ECONNREFUSED'),
    )
    const up = health.findIndex((line) => line.includes('● ollama  http://127.0.0.1:11434'))
    expect(down).toBeGreaterThan(0)
    expect(up).toBeGreaterThan(down)
    expect(frame()).toContain('gpu-box-model: upstream unreachable')
    expect(frame()).toMatch(/gpu-box-model\s+failed/)
    await press(DOWN)
    await press(DOWN, (f) => f.includes('gpu-box-model: failed: connect ECONNREFUSED'))
  })

  it('fits an 80x24 terminal: 23 lines, none wider than 80 columns, footer last', () => {
    const { frame } = show({ status: busyStatus() }, { columns: 80, rows: 24 })
    const all = lines(frame())
    expect(all).toHaveLength(23)
    for (const line of all) expect([...line].length).toBeLessThanOrEqual(80)
    expect(all.at(-1)).toContain('? help')
    expect(frame()).toContain('STATE')
    expect(frame()).toContain('UPSTREAMS')
  })

  it('cuts rows rather than wrapping them on a terminal narrower than 80 columns', () => {
    const { frame } = show({ status: busyStatus() }, { columns: 60, rows: 24 })
    const all = lines(frame())
    expect(all).toHaveLength(23)
    for (const line of all) expect([...line].length).toBeLessThanOrEqual(60)
    expect(frame()).toMatch(/› velo-tiny\s+ready\s+4\/4/)
  })

  it('keeps a long model list inside 80x24 and scrolls to the selection', async () => {
    const models = Array.from({ length: 15 }, (_, i) =>
      modelFixture({ id: `model-${String(i).padStart(2, '0')}` }),
    )
    const { frame, press } = show({ status: statusFixture({ models }) })
    expect(lines(frame())).toHaveLength(23)
    expect(frame()).toContain('(1-')
    expect(frame()).not.toContain('model-14')
    for (let i = 0; i < 14; i++) await press(DOWN)
    await vi.waitFor(() => expect(frame()).toMatch(/› model-14/))
    expect(lines(frame())).toHaveLength(23)
    await press(UP, (f) => /› model-13/.test(f))
  })

  it('uses a wide terminal: kind and upstream columns, recent requests and health side by side', () => {
    const { frame } = show({ status: busyStatus() }, { columns: 170, rows: 30 })
    const all = lines(frame())
    expect(all).toHaveLength(29)
    for (const line of all) expect([...line].length).toBeLessThanOrEqual(170)
    expect(all.find((line) => line.includes('MODEL'))).toMatch(/KIND .*UPSTREAM .*PROFILE/)
    expect(frame()).toContain('velo-tiny@cpu-8c')
    expect(all.find((line) => line.startsWith('TIME'))).toMatch(/CACHE\s+UPSTREAMS 1\/2 healthy/)
    expect(all.find((line) => line.startsWith('11:02:21'))).toMatch(/502 .*✖ openai/)
    expect(all[1]).toContain('requests 1234')
  })

  it('redraws for the new size when the terminal is resized', async () => {
    const { frame, instance } = show({ status: busyStatus() }, { columns: 80, rows: 24 })
    expect(frame()).not.toContain('KIND')
    instance.stdout.resize(170, 30)
    await vi.waitFor(() => expect(frame()).toContain('KIND'))
    expect(lines(frame())).toHaveLength(29)
  })

  it("takes an explicit size over the terminal's", () => {
    const instance = renderAt(
      <Dashboard status={busyStatus()} onAction={() => {}} columns={100} rows={20} color={false} />,
      { columns: 200, rows: 50 },
    )
    unmounts.push(instance.unmount)
    expect(lines(instance.lastFrame())).toHaveLength(19)
    expect(instance.lastFrame()).toContain('KIND')
    expect(instance.lastFrame()).not.toContain('UPSTREAM ')
  })

  it('says when velo is unreachable and keeps the last figures', () => {
    const { frame } = show({
      status: busyStatus(),
      connection: {
        state: 'disconnected',
        target: 'http://127.0.0.1:8000',
        error: 'connect ECONNREFUSED 127.0.0.1:8000',
        attempts: 3,
      },
    })
    expect(lines(frame())[0]).toMatch(/^✖ /)
    expect(lines(frame())[1]).toBe('disconnected (retry 3): connect ECONNREFUSED 127.0.0.1:8000')
    expect(frame()).toContain('velo-tiny')
  })

  it('says it is connecting before the first snapshot', () => {
    const { frame } = show({
      status: undefined,
      connection: { state: 'connecting', target: 'http://127.0.0.1:8000', error: undefined, attempts: 0 },
    })
    expect(frame()).toContain('connecting to http://127.0.0.1:8000')
  })

  it('respects NO_COLOR: no escape codes at all, selection shown by a glyph', () => {
    expect(colorEnabled({ NO_COLOR: '1' })).toBe(false)
    expect(colorEnabled({ NO_COLOR: '' })).toBe(true)
    expect(colorEnabled({ TERM: 'dumb' })).toBe(false)
    expect(colorEnabled({})).toBe(true)
    const plain = show({ status: busyStatus(), color: false }).frame()
    expect(plain).not.toContain(ESC)
    expect(plain).toContain('› velo-tiny')
    const colored = show({ status: busyStatus(), color: true }).frame()
    expect(colored).toContain(`${ESC}[`)
  })

  it('shows the outcome of the last action in the footer', () => {
    const { frame } = show({
      status: busyStatus(),
      notice: { text: 'unload velo-tiny failed: boom', tone: 'error' },
    })
    expect(lines(frame()).at(-1)).toBe('unload velo-tiny failed: boom')
  })
})

describe('Dashboard keys', () => {
  const twoModels = () =>
    statusFixture({
      models: [modelFixture(), modelFixture({ id: 'qwen2.5:7b', kind: 'ollama', paused: true })],
      upstreams: [upstreamFixture()],
    })

  it('u, l and p act on the selected model; p resumes a paused one', async () => {
    const { press, actions, frame } = show({ status: twoModels() })
    await press('u', () => actions.length === 1)
    await press('l', () => actions.length === 2)
    await press('p', () => actions.length === 3)
    await press(DOWN, (f) => f.includes('› qwen2.5:7b'))
    expect(frame()).toMatch(/qwen2\.5:7b\s+paused/)
    await press('p', () => actions.length === 4)
    await press('u', () => actions.length === 5)
    expect(actions).toEqual([
      { type: 'unload', model: 'velo-tiny' },
      { type: 'load', model: 'velo-tiny' },
      { type: 'pause', model: 'velo-tiny' },
      { type: 'resume', model: 'qwen2.5:7b' },
      { type: 'unload', model: 'qwen2.5:7b' },
    ])
  })

  it('acts on the new selection when the move and the key arrive in one read', async () => {
    const { press, actions } = show({ status: twoModels() })
    await press(`${DOWN}u`, () => actions.length === 1)
    expect(actions).toEqual([{ type: 'unload', model: 'qwen2.5:7b' }])
  })

  it('c clears the cache; Ctrl-C and q quit and do not clear the cache', async () => {
    const { press, actions } = show({ status: twoModels() })
    await press('c', () => actions.length === 1)
    await press('\x03', () => actions.length === 2)
    await press('q', () => actions.length === 3)
    expect(actions).toEqual([{ type: 'clear-cache' }, { type: 'quit' }, { type: 'quit' }])
  })

  it('? shows the help and hides it again; model keys do nothing without models', async () => {
    const { press, actions, frame } = show({ status: statusFixture() })
    await press('?', (f) => f.includes('unload the selected model'))
    expect(frame()).toContain('clear the response cache')
    await press('?', (f) => !f.includes('unload the selected model'))
    await press('u')
    await press('p')
    await press('c', () => actions.length === 1)
    expect(actions).toEqual([{ type: 'clear-cache' }])
  })

  it('Esc closes the help', async () => {
    const { press } = show({ status: twoModels() })
    await press('?', (f) => f.includes('keys'))
    await press(ESC, (f) => !f.includes('unload the selected model'))
  })

  it('keeps the selection on the same model when the list reorders', async () => {
    const status = twoModels()
    const { press, instance, frame } = show({ status })
    await press(DOWN, (f) => f.includes('› qwen2.5:7b'))
    const reordered = { ...status, models: [...status.models].reverse() }
    instance.rerender(<Dashboard status={reordered} onAction={() => {}} color={false} />)
    await vi.waitFor(() => expect(frame()).toMatch(/^› qwen2\.5:7b/m))
    expect(lines(frame()).findIndex((line) => line.startsWith('› qwen'))).toBeLessThan(
      lines(frame()).findIndex((line) => line.startsWith('  velo-tiny')),
    )
  })
})
