import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa, type ResultPromise } from 'execa'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort, waitUntil } from '../../src/core/process/supervise.js'
import type { VeloStatus } from '../../src/proxy/status-types.js'
import { VELO_BIN, velo } from '../helpers/cli.js'
import { lacks } from '../helpers/rig.js'

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'velo-serve-e2e-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('velo serve (the built CLI)', () => {
  it('exits non-zero naming the file, line and field of a bad config', async () => {
    const file = join(dir, 'bad.yaml')
    await writeFile(file, 'server:\n  port: 8000\nmanaged:\n  maxLoaded: zero\n')
    const result = await velo(['serve', '--config', file, '--no-tui'])
    expect(result.exitCode).toBe(2)
    expect(result.stderr).toMatch(/bad\.yaml:4: managed\.maxLoaded: .*expected/)
    expect(result.stderr).not.toMatch(/\n\s+at /)
  })

  it('refuses a malformed --upstream with the flag named', async () => {
    const result = await velo(['serve', '--upstream', 'localhost', '--no-tui', '--port', '0'])
    expect(result.exitCode).toBe(2)
    expect(result.stderr).toContain('--upstream: expected a URL')
  })

  it('refuses to listen beyond this machine without keys, and says how to', async () => {
    const result = await velo(['serve', '--host', '0.0.0.0', '--port', '0', '--no-tui', '--no-detect-ollama'])
    expect(result.exitCode).toBe(2)
    expect(result.stderr).toContain('refusing to listen on 0.0.0.0 without API keys')
    expect(result.stderr).toContain('--insecure-no-auth')
  })

  describe.skipIf(lacks('llama-server'))('on the embedded default', () => {
    let serve: ResultPromise<{ reject: false; all: true }> | undefined
    afterAll(async () => {
      serve?.kill('SIGKILL')
    })

    it('serves velo’s synthetic model, answers the openai client, and stops its children on SIGTERM', async () => {
      const port = await freePort()
      serve = execa(
        process.execPath,
        [
          VELO_BIN,
          'serve',
          '--port',
          String(port),
          '--no-tui',
          '--no-detect-ollama',
          '--log-format',
          'json',
          '--json',
        ],
        { reject: false, all: true, env: { ...process.env, CI: '' } },
      )
      const url = `http://127.0.0.1:${port}`
      await waitUntil(
        async () => {
          if (serve?.exitCode !== null && serve?.exitCode !== undefined) throw new Error('velo serve exited')
          return (await fetch(`${url}/health`)).ok
        },
        { timeoutMs: 120_000, what: 'velo serve' },
      )
      const openai = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 })
      expect((await openai.models.list()).data.map((model) => model.id)).toContain('velo-tiny')
      const completion = await openai.chat.completions.create({
        model: 'velo-tiny',
        messages: [{ role: 'user', content: 'Say hello' }],
        max_tokens: 8,
      })
      expect(completion.choices[0]?.message.content?.length).toBeGreaterThan(0)

      const status = (await (await fetch(`${url}/velo/status`)).json()) as VeloStatus
      const upstream = status.models.find((model) => model.id === 'velo-tiny')?.upstream
      expect(upstream).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
      const { stdout } = await execa('ps', ['-eo', 'pid,args'])
      const line = stdout
        .split('\n')
        .find((row) => row.includes('llama-server') && row.includes(`--port ${new URL(upstream ?? '').port}`))
      const pid = Number(line?.trim().split(/\s+/)[0])
      expect(pid).toBeGreaterThan(0)

      serve.kill('SIGTERM')
      const result = await serve
      expect(result.exitCode).toBe(0)
      // The llama-server velo started is gone with it.
      expect(() => process.kill(pid, 0)).toThrow()
      // --json: the summary on stdout, the request log (JSON lines) on stderr.
      const summary = JSON.parse(result.stdout) as { listen: string; totals: { requests: number } }
      expect(summary.listen).toBe(url)
      expect(summary.totals.requests).toBeGreaterThanOrEqual(1)
      const logged = result.stderr
        .split('\n')
        .filter((row) => row.startsWith('{'))
        .map((row) => JSON.parse(row) as Record<string, unknown>)
        .find((entry) => entry['route'] === '/v1/chat/completions')
      expect(logged).toMatchObject({ model: 'velo-tiny', status: 200, upstream: 'managed:velo-tiny' })
      expect(logged?.['durationMs']).toEqual(expect.any(Number))
    })
  })
})
