import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { VeloStatus } from '../../src/proxy/status-types.js'
import { velo } from '../helpers/cli.js'
import { type FakeVelo, startFakeVelo } from '../unit/ui-fake-velo.js'
import { busyStatus } from '../unit/ui-fixtures.js'

// `velo top` off a terminal (execa pipes its output): summary lines and --json. The live view under
// a terminal is test/e2e/tui.test.ts. The server is a stand-in that serves the /velo/status contract.
let open: FakeVelo
let locked: FakeVelo
beforeAll(async () => {
  open = await startFakeVelo({ status: busyStatus(), intervalMs: 100 })
  locked = await startFakeVelo({ status: busyStatus(), adminKey: 'sk-admin' })
})
afterAll(async () => {
  await open.close()
  await locked.close()
})

describe('velo top without a terminal', () => {
  it('prints one /velo/status snapshot with --json', async () => {
    const { stdout, exitCode } = await velo(['top', '--url', open.url, '--json'])
    expect(exitCode).toBe(0)
    const status = JSON.parse(stdout) as VeloStatus
    expect(status.models.map((model) => model.id)).toEqual(['velo-tiny', 'qwen2.5:7b', 'gpu-box-model'])
    expect(status.models[0]?.queueDepth).toBe(7)
  })

  it('prints summary lines when stdout is not a TTY', async () => {
    const { stdout, exitCode } = await velo(['top', '--url', open.url, '--count', '2', '--interval', '200ms'])
    expect(exitCode).toBe(0)
    const lines = stdout.trim().split('\n')
    expect(lines).toHaveLength(2)
    for (const line of lines) {
      expect(line).toMatch(
        /^\d\d:\d\d:\d\d up 1h02m req\/s 3\.2 tok\/s 154 busy 4\/8 queue 7 cache 42% errors 3 \| velo-tiny ready 4\/4 q7/,
      )
    }
  })

  it('says velo is unreachable instead of failing', async () => {
    const { stdout, exitCode } = await velo(['top', '--url', 'http://127.0.0.1:1', '--count', '1'])
    expect(exitCode).toBe(0)
    expect(stdout).toMatch(/disconnected from http:\/\/127\.0\.0\.1:1: .*ECONNREFUSED/)
  })

  it('uses the admin key from --api-key or VELO_API_KEY, and says when it is missing', async () => {
    const refused = await velo(['top', '--url', locked.url, '--json'])
    expect(refused.exitCode).toBe(1)
    expect(JSON.parse(refused.stdout)).toEqual({
      error: {
        code: 'VELO_UPSTREAM_ERROR',
        message: 'GET /velo/status: velo answered HTTP 401: invalid API key',
        suggestion: 'pass an admin key with --api-key',
      },
    })
    const lines = await velo(['top', '--url', locked.url, '--count', '1'])
    expect(lines.stdout).toContain('HTTP 401: invalid API key (pass an admin key with --api-key)')
    const flag = await velo(['top', '--url', locked.url, '--api-key', 'sk-admin', '--json'])
    expect(flag.exitCode).toBe(0)
    const env = await velo(['top', '--url', locked.url, '--json'], { env: { VELO_API_KEY: 'sk-admin' } })
    expect(env.exitCode).toBe(0)
  })

  it('rejects a bad --url or --interval with the flag named and no stack trace', async () => {
    const url = await velo(['top', '--url', 'localhost:8000', '--count', '1'])
    expect(url.exitCode).toBe(2)
    expect(url.stderr).toContain('velo: --url: expected an http or https URL, got "localhost:8000"')
    expect(url.stderr).not.toMatch(/at .*\.js:\d+/)
    const interval = await velo(['top', '--url', open.url, '--interval', 'soon', '--count', '1'])
    expect(interval.exitCode).toBe(2)
    expect(interval.stderr).toContain(
      'velo: --interval: expected a duration of at least 100ms like 2s, got "soon"',
    )
  })
})
