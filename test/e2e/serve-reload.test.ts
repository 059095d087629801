import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa, type ResultPromise } from 'execa'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { LlamaServer } from '../../src/core/engine/llama-server.js'
import { freePort, waitUntil } from '../../src/core/process/supervise.js'
import { VELO_BIN } from '../helpers/cli.js'
import { lacks, startRigLlamaServer } from '../helpers/rig.js'

interface LogLine {
  msg?: string
  err?: string
  applied?: string[]
}

describe.skipIf(lacks('llama-server'))('velo serve reloads velo.yaml (the built CLI)', () => {
  let dir: string
  let file: string
  let upstream: LlamaServer
  let serve: ResultPromise<{ reject: false }> | undefined
  let url: string
  const logs: LogLine[] = []

  /** Save the file the way editors do: a new file renamed over the old one. */
  async function save(text: string): Promise<void> {
    await writeFile(`${file}.tmp`, text)
    await rename(`${file}.tmp`, file)
  }

  async function modelIds(): Promise<string[]> {
    const response = await request(`${url}/v1/models`)
    const body = (await response.body.json()) as { data: { id: string }[] }
    return body.data.map((model) => model.id)
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'velo-reload-'))
    file = join(dir, 'velo.yaml')
    upstream = await startRigLlamaServer()
    await save(`upstreams:\n  - url: ${upstream.url}/v1\n`)
    const port = await freePort()
    url = `http://127.0.0.1:${port}`
    serve = execa(
      process.execPath,
      [VELO_BIN, 'serve', '--config', file, '--port', String(port), '--no-tui', '--log-format', 'json'],
      { reject: false, env: { ...process.env, CI: '' } },
    )
    let partial = ''
    serve.stdout?.on('data', (chunk: Buffer) => {
      const lines = (partial + chunk.toString('utf8')).split('\n')
      partial = lines.pop() ?? ''
      for (const line of lines) {
        if (line.startsWith('{')) logs.push(JSON.parse(line) as LogLine)
      }
    })
    await waitUntil(
      async () => {
        const response = await request(`${url}/health`).catch(() => undefined)
        await response?.body.dump()
        return response?.statusCode === 200
      },
      { timeoutMs: 60_000, what: 'velo serve' },
    )
  }, 120_000)
  afterAll(async () => {
    serve?.kill('SIGKILL')
    await upstream?.stop()
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  it('applies a saved file, keeps serving on the old config when the new one is broken, and reloads on SIGHUP', async () => {
    expect(await modelIds()).toEqual(['velo-tiny'])
    await save(`upstreams:\n  - url: ${upstream.url}/v1\naliases:\n  fast: velo-tiny\n`)
    await waitUntil(async () => (await modelIds()).includes('fast'), { timeoutMs: 15_000, what: 'the alias' })
    // Log lines go out in batches (at most 100 ms later): wait for the line, then read it.
    await waitUntil(async () => logs.some((line) => line.msg === 'config reloaded'), {
      timeoutMs: 5_000,
      what: 'the reload log line',
    })
    expect(logs.find((line) => line.msg === 'config reloaded')?.applied).toEqual(['aliases'])

    await save(`upstreams:\n  - url: ${upstream.url}/v1\naliases: five\n`)
    await waitUntil(async () => logs.some((line) => line.msg?.startsWith('config reload failed')), {
      timeoutMs: 15_000,
      what: 'the failed reload',
    })
    const failed = logs.find((line) => line.msg?.startsWith('config reload failed'))
    expect(failed?.msg).toBe('config reload failed; still serving the previous config')
    expect(failed?.err).toMatch(/velo\.yaml:3: aliases: /)
    expect(await modelIds()).toEqual(['velo-tiny', 'fast'])

    const before = logs.length
    serve?.kill('SIGHUP')
    await waitUntil(async () => logs.slice(before).some((line) => line.msg?.startsWith('config reload')), {
      timeoutMs: 15_000,
      what: 'the reload on SIGHUP',
    })
    // The file is still broken: SIGHUP says so and velo goes on, alive, with the config it has.
    expect(logs.slice(before).map((line) => line.msg)).toContain(
      'config reload failed; still serving the previous config',
    )
    expect(serve?.exitCode).toBeNull()
    expect(await modelIds()).toEqual(['velo-tiny', 'fast'])
  })
})
