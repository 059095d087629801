import { afterEach, describe, expect, it, vi } from 'vitest'
import type { VeloStatus } from '../../src/proxy/status-types.js'
import { LiveDashboard } from '../../src/ui/LiveDashboard.js'
import { createPollingSource, type DashboardActions, type StatusSource } from '../../src/ui/source.js'
import { modelFixture, statusFixture } from './ui-fixtures.js'
import { renderAt } from './ui-render.js'

let cleanups: (() => void)[] = []
afterEach(() => {
  for (const cleanup of cleanups) cleanup()
  cleanups = []
  vi.useRealTimers()
})

function recordingActions(fail?: string) {
  const calls: string[] = []
  const act = (name: string) => async () => {
    calls.push(name)
    if (fail) throw new Error(fail)
  }
  const actions: DashboardActions = {
    unload: async (id) => act(`unload ${id}`)(),
    load: async (id) => act(`load ${id}`)(),
    pause: async (id) => act(`pause ${id}`)(),
    resume: async (id) => act(`resume ${id}`)(),
    clearCache: act('clear-cache'),
  }
  return { calls, actions }
}

function mount(source: StatusSource, actions: DashboardActions, onQuit = () => {}) {
  const instance = renderAt(
    <LiveDashboard source={source} actions={actions} onQuit={onQuit} color={false} refreshMs={250} />,
    { columns: 80, rows: 24 },
  )
  cleanups.push(instance.unmount)
  return instance
}

describe('LiveDashboard', () => {
  it('redraws when the source says the figures changed', async () => {
    let status: VeloStatus = statusFixture({
      models: [modelFixture({ state: 'unloaded', upstream: undefined })],
    })
    const source = createPollingSource(() => status, { intervalMs: 60_000 })
    cleanups.push(() => source.close?.())
    const { actions } = recordingActions()
    const view = mount(source, actions)
    expect(view.lastFrame()).toMatch(/velo-tiny\s+unloaded/)
    status = statusFixture({ models: [modelFixture({ state: 'ready', slotsBusy: 2, queueDepth: 5 })] })
    source.notify()
    await vi.waitFor(() => expect(view.lastFrame()).toMatch(/velo-tiny\s+ready\s+2\/4\s+5/))
  })

  it('runs the key through the actions and reports the outcome', async () => {
    const source = createPollingSource(() => statusFixture({ models: [modelFixture()] }))
    cleanups.push(() => source.close?.())
    const { calls, actions } = recordingActions()
    const view = mount(source, actions)
    view.stdin.write('u')
    await vi.waitFor(() => expect(view.lastFrame().split('\n').at(-1)).toBe('unloaded velo-tiny'))
    view.stdin.write('c')
    await vi.waitFor(() => expect(view.lastFrame().split('\n').at(-1)).toBe('cleared the cache'))
    expect(calls).toEqual(['unload velo-tiny', 'clear-cache'])
  })

  it('shows why an action failed', async () => {
    const source = createPollingSource(() => statusFixture({ models: [modelFixture()] }))
    cleanups.push(() => source.close?.())
    const { actions } = recordingActions('velo answered HTTP 404: model not found')
    const view = mount(source, actions)
    view.stdin.write('l')
    await vi.waitFor(() =>
      expect(view.lastFrame()).toContain('loading velo-tiny failed: velo answered HTTP 404: model not found'),
    )
  })

  it('calls onQuit for q', async () => {
    const source = createPollingSource(() => statusFixture())
    cleanups.push(() => source.close?.())
    const onQuit = vi.fn()
    const view = mount(source, recordingActions().actions, onQuit)
    view.stdin.write('q')
    await vi.waitFor(() => expect(onQuit).toHaveBeenCalledTimes(1))
  })

  it('reads the source at most once per refresh interval however often it changes', async () => {
    vi.useFakeTimers({ now: 1_000_000 })
    let reads = 0
    const listeners = new Set<() => void>()
    const source: StatusSource = {
      snapshot: () => {
        reads += 1
        return statusFixture({ uptimeSeconds: reads })
      },
      subscribe: (listener) => {
        listeners.add(listener)
        return () => listeners.delete(listener)
      },
    }
    mount(source, recordingActions().actions)
    const afterMount = reads
    for (let i = 0; i < 20; i++) for (const listener of listeners) listener()
    expect(reads).toBe(afterMount)
    vi.advanceTimersByTime(250)
    expect(reads).toBe(afterMount + 1)
    vi.advanceTimersByTime(1000)
    expect(reads).toBe(afterMount + 1)
    for (const listener of listeners) listener()
    expect(reads).toBe(afterMount + 2)
  })
})
