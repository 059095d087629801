import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { request as httpRequest } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { liveProcesses } from '../../src/core/process/supervise.js'
import type { VeloServer } from '../../src/proxy/server.js'
import { lacks, required, rig } from '../helpers/rig.js'
import { alive, getJson, managedPid, modelStatus, startVelo, waitFor } from './serve-helpers.js'

/** llama-server processes started for a model id (velo passes it as --alias). */
async function processesFor(id: string): Promise<number> {
  const { stdout } = await execa('ps', ['-eo', 'pid,args'])
  return stdout.split('\n').filter((line) => line.includes('llama-server') && line.includes(`--alias ${id}`))
    .length
}

/** `llamacpp:tokens_predicted_total` from a llama-server started with --metrics. */
async function tokensPredicted(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text()
  const match = /^llamacpp:tokens_predicted_total (\d+)/m.exec(text)
  return Number(match?.[1] ?? Number.NaN)
}

describe.skipIf(lacks('llama-server'))('managed llama-server lifecycle', () => {
  let velo: VeloServer
  let openai: OpenAI
  let dir: string
  const chat = (model: string) =>
    openai.chat.completions.create({ model, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4 })

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'velo-lifecycle-'))
    const broken = join(dir, 'broken.gguf')
    await writeFile(broken, 'this is not a GGUF file\n')
    const tiny = required(rig().tinyModel, 'tiny model')
    velo = await startVelo({
      managed: {
        maxLoaded: 1,
        idleTtl: 0,
        models: {
          'tiny-a': { path: tiny, args: ['--ctx-size', '4096', '--parallel', '1', '--metrics'] },
          'tiny-b': { path: tiny, args: ['--ctx-size', '1024', '--parallel', '1'] },
          'tiny-c': { path: tiny, args: ['--ctx-size', '1024', '--parallel', '1'], idleTtl: '1s' },
          'tiny-broken': { path: broken },
        },
      },
    })
    openai = new OpenAI({ baseURL: `${velo.url}/v1`, apiKey: 'unused', maxRetries: 0 })
  })
  afterAll(async () => {
    await velo?.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('starts a model’s llama-server on its first request', async () => {
    expect((await modelStatus(velo, 'tiny-a')).state).toBe('unloaded')
    expect(managedPid(velo, 'tiny-a')).toBeUndefined()
    const completion = await chat('tiny-a')
    expect(completion.choices).toHaveLength(1)
    const pid = managedPid(velo, 'tiny-a')
    expect(pid !== undefined && alive(pid)).toBe(true)
    expect(await modelStatus(velo, 'tiny-a')).toMatchObject({ state: 'ready', slotsTotal: 1 })
  })

  it('starts a SIGKILLed llama-server again on the next request', async () => {
    const before = required(managedPid(velo, 'tiny-a'), 'pid')
    process.kill(before, 'SIGKILL')
    await waitFor(
      'velo to notice the crash',
      async () => (await modelStatus(velo, 'tiny-a')).state === 'failed',
    )
    expect((await modelStatus(velo, 'tiny-a')).error).toMatch(/exited unexpectedly/)
    const completion = await chat('tiny-a')
    expect(completion.choices).toHaveLength(1)
    const after = required(managedPid(velo, 'tiny-a'), 'pid')
    expect(after).not.toBe(before)
    expect(alive(after)).toBe(true)
  })

  it('frees the llama-server slot when a streaming client disconnects', async () => {
    const upstream = required((await modelStatus(velo, 'tiny-a')).upstream, 'tiny-a url')
    const predictedBefore = await tokensPredicted(upstream)
    const maxTokens = 3000
    const firstChunk = await new Promise<string>((resolve, reject) => {
      const req = httpRequest(`${velo.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
      })
      req.on('response', (res) => {
        res.once('data', (chunk: Buffer) => {
          // Walk away mid-stream: close the socket without reading the rest.
          req.destroy()
          resolve(chunk.toString('utf8'))
        })
      })
      req.on('error', (error) => {
        if (!req.destroyed) reject(error)
      })
      req.end(
        JSON.stringify({
          model: 'tiny-a',
          messages: [{ role: 'user', content: 'Write a long story' }],
          max_tokens: maxTokens,
          ignore_eos: true,
          stream: true,
        }),
      )
    })
    expect(firstChunk.startsWith('data: ')).toBe(true)
    await waitFor('the slot to be free', async () => {
      const { body } = await getJson<{ is_processing: boolean }[]>(`${upstream}/slots`)
      return body.every((slot) => !slot.is_processing)
    })
    // Had the generation gone on, it would have produced all of its tokens before the slot freed.
    const predicted = (await tokensPredicted(upstream)) - predictedBefore
    expect(predicted).toBeLessThan(maxTokens)
    const status = await getJson<import('../../src/proxy/status-types.js').VeloStatus>(
      `${velo.url}/velo/status`,
    )
    expect(status.body.recent.some((entry) => entry.model === 'tiny-a' && entry.status === 499)).toBe(true)
  })

  it('with max-loaded 1, unloads the first model to serve a second', async () => {
    const first = required(managedPid(velo, 'tiny-a'), 'pid')
    await chat('tiny-b')
    expect(alive(first)).toBe(false)
    expect((await modelStatus(velo, 'tiny-a')).state).toBe('unloaded')
    expect((await modelStatus(velo, 'tiny-b')).state).toBe('ready')
  })

  it('unloads a model after its idle TTL (the process is gone)', async () => {
    await chat('tiny-c')
    const pid = required(managedPid(velo, 'tiny-c'), 'pid')
    await waitFor('tiny-c to unload', async () => (await modelStatus(velo, 'tiny-c')).state === 'unloaded')
    expect(alive(pid)).toBe(false)
  })

  it('answers 503 naming the model and the cause when llama-server cannot start it', async () => {
    const error = await chat('tiny-broken').catch((e: unknown) => e)
    expect((error as { status?: number }).status).toBe(503)
    expect(String((error as Error).message)).toMatch(/tiny-broken failed to start/)
    expect((await modelStatus(velo, 'tiny-broken')).state).toBe('failed')
  })

  it('lets requests that arrive while a model loads wait for it, with one process', async () => {
    await velo.managed.unload('tiny-b')
    const results = await Promise.all([chat('tiny-b'), chat('tiny-b'), chat('tiny-b')])
    expect(results.every((result) => result.choices.length === 1)).toBe(true)
    expect(await processesFor('tiny-b')).toBe(1)
  })

  it('leaves no llama-server behind when it closes', async () => {
    const pids = velo.managed
      .status()
      .map((model) => model.pid)
      .filter((pid): pid is number => pid !== undefined)
    expect(pids.length).toBeGreaterThan(0)
    await velo.close()
    expect(pids.filter(alive)).toEqual([])
    expect(liveProcesses()).toEqual([])
  })
})
