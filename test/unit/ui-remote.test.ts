import { afterEach, describe, expect, it, vi } from 'vitest'
import { VeloError } from '../../src/core/errors.js'
import { baseUrl, createRemote, type Remote } from '../../src/ui/remote.js'
import { type FakeVelo, startFakeVelo } from './ui-fake-velo.js'
import { busyStatus, statusFixture } from './ui-fixtures.js'

let fakes: FakeVelo[] = []
let remotes: Remote[] = []
afterEach(async () => {
  for (const remote of remotes) await remote.close()
  for (const fake of fakes) await fake.close()
  fakes = []
  remotes = []
})

async function fake(options: Parameters<typeof startFakeVelo>[0]) {
  const started = await startFakeVelo({ intervalMs: 50, ...options })
  fakes.push(started)
  return started
}

function remote(options: Parameters<typeof createRemote>[0]) {
  const created = createRemote({ minBackoffMs: 20, maxBackoffMs: 100, ...options })
  remotes.push(created)
  return created
}

describe('remote source', () => {
  it('streams snapshots from /velo/status and reports the connection', async () => {
    const velo = await fake({ status: busyStatus() })
    const { source } = remote({ url: velo.url })
    const changes = vi.fn()
    source.subscribe(changes)
    await vi.waitFor(() => expect(source.snapshot()?.models[0]?.queueDepth).toBe(7))
    expect(source.connection?.()).toEqual({
      state: 'connected',
      target: velo.url,
      error: undefined,
      attempts: 0,
    })
    velo.status = { ...velo.status, models: velo.status.models.map((m) => ({ ...m, queueDepth: 2 })) }
    await vi.waitFor(() => expect(source.snapshot()?.models[0]?.queueDepth).toBe(2))
    expect(changes.mock.calls.length).toBeGreaterThan(1)
    expect(velo.streams).toBe(1)
  })

  it('shows disconnected when velo goes away and reconnects when it is back', async () => {
    const first = await fake({ status: statusFixture({ uptimeSeconds: 10 }) })
    const { source } = remote({ url: first.url })
    source.subscribe(() => {})
    await vi.waitFor(() => expect(source.snapshot()?.uptimeSeconds).toBe(10))
    await first.close()
    await vi.waitFor(() => expect(source.connection?.().state).toBe('disconnected'))
    await vi.waitFor(() => expect(source.connection?.().attempts).toBeGreaterThan(1))
    expect(source.connection?.().error).toMatch(/ECONNREFUSED|closed the status stream|other side closed/)
    // The last figures stay on screen while it is gone.
    expect(source.snapshot()?.uptimeSeconds).toBe(10)
    await fake({ status: statusFixture({ uptimeSeconds: 99 }), port: first.port })
    await vi.waitFor(() => expect(source.snapshot()?.uptimeSeconds).toBe(99))
    expect(source.connection?.()).toMatchObject({ state: 'connected', attempts: 0 })
  })

  it('treats a stream that goes silent as dead', async () => {
    const velo = await fake({ status: statusFixture(), mode: 'silent' })
    const { source } = remote({ url: velo.url, staleMs: 200 })
    source.subscribe(() => {})
    await vi.waitFor(() => expect(source.connection?.().state).toBe('connected'))
    await vi.waitFor(() => expect(source.connection?.().state).toBe('disconnected'), { timeout: 10_000 })
    expect(source.connection?.().error).toMatch(/timeout/i)
  })

  it('polls a velo that answers the stream request with one JSON snapshot', async () => {
    const velo = await fake({ status: statusFixture({ listen: '0.0.0.0:9000' }), mode: 'json-only' })
    const { source } = remote({ url: velo.url })
    source.subscribe(() => {})
    await vi.waitFor(() => expect(source.snapshot()?.listen).toBe('0.0.0.0:9000'))
    expect(source.connection?.().state).toBe('connected')
  })

  it('sends the admin key and says when it is missing', async () => {
    const velo = await fake({ status: statusFixture(), adminKey: 'sk-admin' })
    const without = remote({ url: velo.url })
    without.source.subscribe(() => {})
    await vi.waitFor(() => expect(without.source.connection?.().state).toBe('disconnected'))
    expect(without.source.connection?.().error).toBe(
      'HTTP 401: invalid API key (pass an admin key with --api-key)',
    )
    const withKey = remote({ url: velo.url, apiKey: 'sk-admin' })
    withKey.source.subscribe(() => {})
    await vi.waitFor(() => expect(withKey.source.snapshot()).toBeDefined())
  })

  it('stops streaming on close', async () => {
    const velo = await fake({ status: statusFixture() })
    const { source, close } = createRemote({ url: velo.url })
    source.subscribe(() => {})
    await vi.waitFor(() => expect(velo.streams).toBe(1))
    await close()
    await vi.waitFor(() => expect(velo.streams).toBe(0))
  })
})

describe('remote actions and snapshot', () => {
  it('POSTs each key to its admin endpoint with the key', async () => {
    const velo = await fake({ status: busyStatus(), adminKey: 'sk-admin' })
    const { actions } = remote({ url: `${velo.url}/`, apiKey: 'sk-admin' })
    await actions.unload('velo-tiny')
    await actions.load('velo-tiny')
    await actions.pause('qwen2.5:7b')
    await actions.resume('qwen2.5:7b')
    await actions.clearCache()
    expect(velo.calls).toEqual([
      { method: 'POST', path: '/velo/models/velo-tiny/unload', authorization: 'Bearer sk-admin' },
      { method: 'POST', path: '/velo/models/velo-tiny/load', authorization: 'Bearer sk-admin' },
      { method: 'POST', path: '/velo/models/qwen2.5%3A7b/pause', authorization: 'Bearer sk-admin' },
      { method: 'POST', path: '/velo/models/qwen2.5%3A7b/resume', authorization: 'Bearer sk-admin' },
      { method: 'POST', path: '/velo/cache/clear', authorization: 'Bearer sk-admin' },
    ])
  })

  it('turns error answers and an absent velo into VeloErrors with the cause', async () => {
    const velo = await fake({ status: busyStatus() })
    const { actions } = remote({ url: velo.url })
    const refused = actions.unload('nope')
    await expect(refused).rejects.toThrow('unload nope: velo answered HTTP 404: model not found')
    await expect(refused).rejects.toBeInstanceOf(VeloError)
    await velo.close()
    await expect(actions.unload('velo-tiny')).rejects.toThrow(
      /cannot reach velo at http:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED/,
    )
  })

  it('fetches one snapshot and rejects what is not one', async () => {
    const velo = await fake({ status: busyStatus() })
    expect((await remote({ url: velo.url }).fetchStatus()).models).toHaveLength(3)
    const other = await fake({ status: busyStatus(), mode: 'garbage' })
    await expect(remote({ url: other.url }).fetchStatus()).rejects.toThrow('not a velo status snapshot')
    const locked = await fake({ status: busyStatus(), adminKey: 'k' })
    const error = await remote({ url: locked.url })
      .fetchStatus()
      .catch((e: unknown) => e)
    expect(error).toBeInstanceOf(VeloError)
    expect((error as VeloError).message).toBe('GET /velo/status: velo answered HTTP 401: invalid API key')
    expect((error as VeloError).suggestion).toBe('pass an admin key with --api-key')
  })
})

describe('baseUrl', () => {
  it('accepts a velo URL with or without /velo/status and a trailing slash', () => {
    expect(baseUrl('http://127.0.0.1:8000')).toBe('http://127.0.0.1:8000')
    expect(baseUrl('http://127.0.0.1:8000/')).toBe('http://127.0.0.1:8000')
    expect(baseUrl('https://box/velo/status')).toBe('https://box')
    expect(baseUrl('http://box:8000/prefix/')).toBe('http://box:8000/prefix')
  })

  it('names --url and what it expected for anything else', () => {
    expect(() => baseUrl('not a url')).toThrow(
      '--url: expected a URL like http://127.0.0.1:8000, got "not a url"',
    )
    expect(() => baseUrl('localhost:8000')).toThrow(
      '--url: expected an http or https URL, got "localhost:8000"',
    )
    expect(() => baseUrl('ftp://box')).toThrow(VeloError)
  })
})
