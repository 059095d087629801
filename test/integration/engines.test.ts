import { execa } from 'execa'
import { Ollama } from 'ollama'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { LlamaServer } from '../../src/core/engine/llama-server.js'
import { readGguf } from '../../src/core/gguf/read.js'
import { ensureSynthModel } from '../../src/core/models/synth.js'
import {
  lacks,
  type RigOllama,
  type RigRedis,
  required,
  rig,
  startRigLlamaServer,
  startRigOllama,
  startRigRedis,
} from '../helpers/rig.js'

describe.skipIf(lacks('llama-server'))('llama-server (velo engine) serving the tiny synthetic model', () => {
  let server: LlamaServer
  beforeAll(async () => {
    server = await startRigLlamaServer()
  })
  afterAll(async () => {
    await server?.stop()
  })

  it('answers a chat completion through the official openai client, with usage and timings', async () => {
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused' })
    const completion = await client.chat.completions.create({
      model: 'velo-tiny',
      messages: [{ role: 'user', content: 'Say hello' }],
      max_tokens: 24,
      temperature: 0,
    })
    const choice = completion.choices[0]
    expect(choice?.message.content?.length).toBeGreaterThan(0)
    expect(completion.usage?.completion_tokens).toBeGreaterThan(0)
    expect(completion.usage?.completion_tokens).toBeLessThanOrEqual(24)
    expect(completion.usage?.prompt_tokens).toBeGreaterThan(0)
    const timings = (
      completion as unknown as { timings?: { predicted_n: number; predicted_per_second: number } }
    ).timings
    expect(timings?.predicted_n).toBe(completion.usage?.completion_tokens)
    expect(timings?.predicted_per_second).toBeGreaterThan(0)
  })

  it('produces JSON that matches a response_format schema (constrained decoding)', async () => {
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused' })
    const completion = await client.chat.completions.create({
      model: 'velo-tiny',
      messages: [{ role: 'user', content: 'Give me a number' }],
      max_tokens: 64,
      response_format: {
        type: 'json_schema',
        json_schema: {
          name: 'n',
          schema: { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] },
        },
      },
    })
    const parsed = JSON.parse(completion.choices[0]?.message.content ?? '') as { n: unknown }
    expect(Number.isInteger(parsed.n)).toBe(true)
  })
})

describe.skipIf(lacks('llama-server'))('llama-bench and the small synthetic model', () => {
  it('llama-bench measures prompt processing and generation on both synthetic sizes', async () => {
    const bench = required(rig().llamaBench, 'llama-bench')
    // What the foundation issue asks of each size: tiny about 20M parameters, small 100-150M.
    const paramRange = { tiny: [15e6, 25e6], small: [100e6, 150e6] } as const
    for (const size of ['tiny', 'small'] as const) {
      const model = await ensureSynthModel(size)
      const { stdout } = await execa(bench, ['-m', model, '-p', '32', '-n', '8', '-r', '1', '-o', 'json'])
      const rows = JSON.parse(stdout) as {
        n_prompt: number
        n_gen: number
        avg_ts: number
        model_n_params: number
      }[]
      const pp = rows.find((row) => row.n_prompt === 32 && row.n_gen === 0)
      const tg = rows.find((row) => row.n_prompt === 0 && row.n_gen === 8)
      expect(pp?.avg_ts, size).toBeGreaterThan(0)
      expect(tg?.avg_ts, size).toBeGreaterThan(0)
      expect(pp?.model_n_params, size).toBe((await readGguf(model)).summary.parameterCount)
      expect(pp?.model_n_params, size).toBeGreaterThanOrEqual(paramRange[size][0])
      expect(pp?.model_n_params, size).toBeLessThanOrEqual(paramRange[size][1])
    }
  })

  it('llama-server loads the small model and generates', async () => {
    const server = await startRigLlamaServer({ model: await ensureSynthModel('small'), alias: 'velo-small' })
    try {
      const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused' })
      const completion = await client.chat.completions.create({
        model: 'velo-small',
        messages: [{ role: 'user', content: 'Hello' }],
        max_tokens: 8,
      })
      expect(completion.usage?.completion_tokens).toBeGreaterThan(0)
    } finally {
      await server.stop()
    }
  })
})

describe.skipIf(lacks('ollama'))('Ollama serving the tiny synthetic model', () => {
  let ollama: RigOllama
  beforeAll(async () => {
    ollama = await startRigOllama()
    await ollama.create('velo-tiny', required(rig().tinyModel, 'tiny model'))
  })
  afterAll(async () => {
    await ollama?.stop()
  })

  it('answers a chat through the official ollama client, with counts and durations', async () => {
    const client = new Ollama({ host: ollama.url })
    const response = await client.chat({
      model: 'velo-tiny',
      messages: [{ role: 'user', content: 'Say hello' }],
      options: { num_predict: 16, temperature: 0 },
    })
    expect(response.message.role).toBe('assistant')
    expect(response.message.content.length).toBeGreaterThan(0)
    expect(response.done).toBe(true)
    expect(response.eval_count).toBeGreaterThan(0)
    expect(response.eval_count).toBeLessThanOrEqual(16)
    expect(response.prompt_eval_count).toBeGreaterThan(0)
    expect(response.eval_duration).toBeGreaterThan(0)
    expect(response.total_duration).toBeGreaterThanOrEqual(response.eval_duration)
  })

  it('loads and generates with the small synthetic model too', async () => {
    await ollama.create('velo-small', await ensureSynthModel('small'))
    const client = new Ollama({ host: ollama.url })
    const response = await client.generate({
      model: 'velo-small',
      prompt: 'Hello',
      options: { num_predict: 8 },
    })
    expect(response.eval_count).toBeGreaterThan(0)
  })

  it('lists the created model with its GGUF details', async () => {
    const client = new Ollama({ host: ollama.url })
    const { models } = await client.list()
    const tiny = models.find((m) => m.name.startsWith('velo-tiny'))
    expect(tiny?.details.family).toBe('llama')
    expect(tiny?.details.quantization_level).toBe('F16')
  })
})

describe.skipIf(lacks('redis'))('Redis', () => {
  let redis: RigRedis
  beforeAll(async () => {
    redis = await startRigRedis()
  })
  afterAll(async () => {
    await redis?.stop()
  })

  it('is reachable and stores a value', async () => {
    const { Redis } = await import('ioredis')
    const client = new Redis(redis.url, { lazyConnect: true })
    await client.connect()
    try {
      expect(await client.ping()).toBe('PONG')
      await client.set('velo:test', 'ok')
      expect(await client.get('velo:test')).toBe('ok')
    } finally {
      client.disconnect()
    }
  })
})

describe('no orphans', () => {
  it('leaves no rig process behind after the suites above stopped theirs', async () => {
    const { liveProcesses } = await import('../../src/core/process/supervise.js')
    expect(liveProcesses()).toEqual([])
    const { stdout } = await execa('ps', ['-eo', 'pid,ppid,args'])
    const mine = stdout
      .split('\n')
      .filter((line) => line.includes(`${process.pid} `) && /llama-server|ollama|redis-server/.test(line))
    expect(mine).toEqual([])
  })
})
