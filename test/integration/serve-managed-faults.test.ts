import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI from 'openai'
import { request } from 'undici'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { VeloError } from '../../src/core/errors.js'
import { ManagedModels, type ManagedOptions } from '../../src/proxy/managed.js'
import type { VeloServer } from '../../src/proxy/server.js'
import { lacks, required, rig } from '../helpers/rig.js'
import { alive, managedPid, modelStatus, startVelo, waitFor } from './serve-helpers.js'

/** A chat long enough to be cut by a crash (ignore_eos: it runs to max_tokens). */
type LongStream = OpenAI.ChatCompletionCreateParamsStreaming & { ignore_eos: boolean }
type LongChat = OpenAI.ChatCompletionCreateParamsNonStreaming & { ignore_eos: boolean }

const LONG = {
  messages: [{ role: 'user' as const, content: 'Write a very long story' }],
  max_tokens: 1500,
  ignore_eos: true,
}

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'velo-faults-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe.skipIf(lacks('llama-server'))('a managed llama-server SIGKILLed under load', () => {
  let velo: VeloServer
  let openai: OpenAI
  const model = 'faults-tiny'

  beforeAll(async () => {
    velo = await startVelo({
      managed: {
        idleTtl: 0,
        models: {
          [model]: {
            path: required(rig().tinyModel, 'tiny model'),
            args: ['--ctx-size', '10240', '--parallel', '5'],
          },
        },
      },
    })
    openai = new OpenAI({ baseURL: `${velo.url}/v1`, apiKey: 'unused', maxRetries: 0 })
  })
  afterAll(async () => {
    await velo?.close()
  })

  it('fails the requests in flight clearly, and serves the next ones from a restarted server', async () => {
    const streams = await Promise.all(
      Array.from({ length: 4 }, () => {
        const params: LongStream = { model, ...LONG, stream: true }
        return openai.chat.completions.create(params)
      }),
    )
    const plainParams: LongChat = { model, ...LONG }
    const plain = openai.chat.completions.create(plainParams).catch((error: unknown) => error)
    // Each stream has produced its first chunk, and all five requests hold a slot: all in flight.
    const readers = streams.map((stream) => stream[Symbol.asyncIterator]())
    await Promise.all(readers.map((reader) => reader.next()))
    const upstream = required((await modelStatus(velo, model)).upstream, 'llama-server url')
    await waitFor('all five requests to be generating', async () => {
      const slots = (await (await fetch(`${upstream}/slots`)).json()) as { is_processing: boolean }[]
      return slots.filter((slot) => slot.is_processing).length === 5
    })
    const before = required(managedPid(velo, model), 'llama-server pid')
    const lease = await velo.managed.acquire(model)
    expect(lease.exited()).toBeUndefined()
    process.kill(before, 'SIGKILL')

    const outcomes = await Promise.all(
      readers.map(async (reader) => {
        try {
          for (;;) if ((await reader.next()).done) return 'ended without an error'
        } catch (error) {
          return error
        }
      }),
    )
    for (const outcome of outcomes) {
      expect(outcome).toBeInstanceOf(OpenAI.APIError)
      expect(String((outcome as Error).message)).toMatch(new RegExp(`llama-server for ${model}.*failed`))
    }
    // The request waiting for a whole answer gets a 502 naming the server it lost.
    const lost = await plain
    expect(lost).toBeInstanceOf(OpenAI.APIError)
    expect((lost as InstanceType<typeof OpenAI.APIError>).status).toBe(502)
    expect(String((lost as Error).message)).toMatch(new RegExp(`llama-server for ${model}`))

    await waitFor('velo to notice the crash', () => managedPid(velo, model) !== before)
    // A lease held across the crash can say what became of its server.
    expect(lease.exited()).toBe(`llama-server for ${model} exited (SIGKILL)`)
    lease.release()
    expect((await modelStatus(velo, model)).error).toMatch(/exited unexpectedly/)
    const answers = await Promise.all(
      Array.from({ length: 3 }, () =>
        openai.chat.completions.create({ model, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4 }),
      ),
    )
    expect(answers.every((answer) => answer.choices.length === 1)).toBe(true)
    const after = required(managedPid(velo, model), 'restarted pid')
    expect(after).not.toBe(before)
    expect(alive(after)).toBe(true)
    expect(alive(before)).toBe(false)
    // velo itself is fine.
    expect((await fetch(`${velo.url}/health`)).status).toBe(200)
  })
})

/** A stand-in for llama-server that listens but never finishes loading (and ignores SIGTERM). */
async function neverHealthyServer(): Promise<string> {
  const script = join(dir, 'never-healthy.mjs')
  await writeFile(
    script,
    `import { createServer } from 'node:http'
const args = process.argv.slice(2)
const port = Number(args[args.indexOf('--port') + 1])
const host = args[args.indexOf('--host') + 1]
process.on('SIGTERM', () => console.log('ignoring SIGTERM'))
createServer((req, res) => {
  res.writeHead(503, { 'content-type': 'application/json' })
  res.end(JSON.stringify({ error: { code: 503, message: 'Loading model', type: 'unavailable_error' } }))
}).listen(port, host, () => console.log('loading model (forever)'))
`,
  )
  const wrapper = join(dir, 'never-healthy')
  await writeFile(wrapper, `#!/bin/sh\nexec "${process.execPath}" "${script}" "$@"\n`)
  await chmod(wrapper, 0o755)
  return wrapper
}

describe.skipIf(lacks('llama-server'))('managed process start failures', () => {
  let managed: ManagedModels | undefined
  afterEach(async () => {
    await managed?.stopAll()
    managed = undefined
  })

  function manager(overrides: Partial<ManagedOptions>): ManagedModels {
    managed = new ManagedModels({
      resolveServer: async () => required(rig().llamaServer, 'llama-server'),
      baseArgs: [],
      maxLoaded: 2,
      startTimeoutMs: 60_000,
      drainTimeoutMs: 1000,
      ...overrides,
    })
    return managed
  }

  it('does not restart a server that fails at start in a tight loop: 503 with Retry-After while backing off', async () => {
    const broken = join(dir, 'broken.gguf')
    await writeFile(broken, 'this is not a GGUF file\n')
    const models = manager({ backoff: { initialMs: 60_000, maxMs: 120_000 } })
    models.add({ id: 'broken', path: broken, args: [], idleTtlMs: 0, aliases: [], source: 'config' })
    const attempt = () => models.acquire('broken').catch((error: unknown) => error)

    const first = await attempt()
    expect(first).toBeInstanceOf(VeloError)
    expect(first).toMatchObject({ code: 'VELO_PROCESS_FAILED', status: 503 })
    expect(String(first)).toMatch(/managed model broken failed to start/)
    // One immediate retry: a crash is often a one-off.
    expect(String(await attempt())).toMatch(/managed model broken failed to start/)
    expect(models.status()[0]).toMatchObject({ state: 'failed', failures: 2 })

    const backingOff = await attempt()
    expect(backingOff).toMatchObject({ code: 'VELO_PROCESS_FAILED', status: 503 })
    expect((backingOff as VeloError).retryAfterSeconds).toBeGreaterThanOrEqual(1)
    expect((backingOff as VeloError).retryAfterSeconds).toBeLessThanOrEqual(60)
    expect(String(backingOff)).toMatch(
      /broken failed 2 times in a row; velo starts it again in \d+ s; last: .*failed to start/,
    )
    // Nothing was started for it: the failure count stands, and no process runs.
    const status = models.status()[0]
    expect(status).toMatchObject({ state: 'failed', failures: 2, pid: undefined })
    expect(status?.retryAt).toBeGreaterThan(Date.now())

    // An operator's load skips the wait (and fails again, counting).
    await expect(models.load('broken')).rejects.toThrow(/failed to start/)
    expect(models.status()[0]?.failures).toBe(3)
    // An operator's unload clears the failures.
    await models.unload('broken')
    expect(models.status()[0]).toMatchObject({ state: 'unloaded', failures: 0, retryAt: undefined })
  })

  it('stops a server that is not healthy within startTimeout and says so', async () => {
    const pids: number[] = []
    const models = manager({
      resolveServer: neverHealthyServer,
      startTimeoutMs: 1500,
      onChange: () => {
        const pid = managed?.status()[0]?.pid
        if (pid !== undefined && !pids.includes(pid)) pids.push(pid)
      },
    })
    models.add({
      id: 'slow',
      path: '/models/slow.gguf',
      args: [],
      idleTtlMs: 0,
      aliases: [],
      source: 'config',
    })
    const error = await models.acquire('slow').catch((e: unknown) => e)
    expect(error).toBeInstanceOf(VeloError)
    expect(error).toMatchObject({ code: 'VELO_PROCESS_FAILED', status: 503 })
    expect(String(error)).toMatch(
      /managed model slow failed to start: llama-server \(\/models\/slow\.gguf\) was not healthy within 1500 ms; velo stopped it \(pid \d+\)/,
    )
    expect(String(error)).toMatch(/loading model \(forever\)/)
    expect((error as VeloError).suggestion).toMatch(/managed\.startTimeout/)
    // The pid was visible while it loaded, and the process (which ignores SIGTERM) is gone.
    expect(pids).toHaveLength(1)
    expect(alive(required(pids[0], 'pid'))).toBe(false)
    expect(models.status()[0]).toMatchObject({ state: 'failed', pid: undefined, failures: 1 })
  })

  it('stops a model that is still loading at once when velo shuts down', async () => {
    const models = manager({ resolveServer: neverHealthyServer, startTimeoutMs: 600_000 })
    models.add({
      id: 'slow',
      path: '/models/slow.gguf',
      args: [],
      idleTtlMs: 0,
      aliases: [],
      source: 'config',
    })
    const pending = models.acquire('slow').catch((e: unknown) => e)
    await waitFor('the server to be spawned', () => models.status()[0]?.pid !== undefined)
    const pid = required(models.status()[0]?.pid, 'pid')
    await models.stopAll()
    expect(alive(pid)).toBe(false)
    expect(String(await pending)).toMatch(/shutting down/)
    expect(models.status()[0]).toMatchObject({ state: 'unloaded', pid: undefined })
  })
})

describe.skipIf(lacks('llama-server'))('velo serve while a managed model backs off', () => {
  let velo: VeloServer

  beforeAll(async () => {
    const broken = join(dir, 'broken-http.gguf')
    await writeFile(broken, 'this is not a GGUF file\n')
    velo = await startVelo({
      managed: { restartBackoff: '1m', models: { 'broken-http': { path: broken } } },
    })
  })
  afterAll(async () => {
    await velo?.close()
  })

  it('answers 503 with Retry-After and the cause, naming the model', async () => {
    const ask = async () => {
      const response = await request(`${velo.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'broken-http', messages: [{ role: 'user', content: 'Hi' }] }),
      })
      const body = (await response.body.json()) as { error: { message: string; code: string } }
      return { status: response.statusCode, retryAfter: response.headers['retry-after'], body }
    }
    const first = await ask()
    expect(first.status).toBe(503)
    expect(first.body.error.message).toMatch(/broken-http failed to start/)
    expect(first.retryAfter).toBeUndefined()
    await ask()
    const third = await ask()
    expect(third.status).toBe(503)
    expect(Number(third.retryAfter)).toBeGreaterThanOrEqual(1)
    expect(Number(third.retryAfter)).toBeLessThanOrEqual(60)
    expect(third.body.error).toMatchObject({ code: 'VELO_PROCESS_FAILED' })
    expect(third.body.error.message).toMatch(/broken-http failed 2 times in a row; velo starts it again in/)
  })
})
