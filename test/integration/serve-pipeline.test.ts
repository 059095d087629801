import { Ajv } from 'ajv'
import { pino } from 'pino'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/core/config/load.js'
import type { VeloConfigInput } from '../../src/core/config/schema.js'
import type { LlamaServer } from '../../src/core/engine/llama-server.js'
import { startServe } from '../../src/proxy/serve.js'
import type { VeloServer } from '../../src/proxy/server.js'
import type { VeloStatus } from '../../src/proxy/status-types.js'
import { lacks, required, rig, startRigLlamaServer } from '../helpers/rig.js'

/**
 * velo serve as `velo serve` builds it (startServe: scheduler, response cache and tool-call repair
 * from the config) in front of the rig's real llama-server, run as managed models.
 */

interface Started {
  velo: VeloServer
  /** Every log line velo wrote, parsed. */
  logs: { msg?: string; model?: string }[]
}

async function serve(config: VeloConfigInput): Promise<Started> {
  const logs: Started['logs'] = []
  const logger = pino(
    { level: 'info' },
    {
      write: (line: string) => {
        logs.push(JSON.parse(line) as Started['logs'][number])
      },
    },
  )
  const velo = await startServe({
    config: parseConfig({
      ...config,
      server: { port: 0, host: '127.0.0.1', ...config.server },
      engine: { llamaServer: required(rig().llamaServer, 'llama-server') },
    }),
    version: 'test',
    logger,
    autoOllama: false,
    defaultModel: false,
  })
  return { velo, logs }
}

interface Posted {
  status: number
  text: string
  headers: Record<string, string | string[] | undefined>
}

async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Posted> {
  const response = await request(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  })
  return { status: response.statusCode, text: await response.body.text(), headers: response.headers }
}

async function modelStatus(velo: VeloServer, id: string) {
  const response = await request(`${velo.url}/velo/status`)
  const status = (await response.body.json()) as VeloStatus
  const model = status.models.find((entry) => entry.id === id)
  if (!model) throw new Error(`no model ${id} in /velo/status`)
  return model
}

const WEATHER_TOOL = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather in a city',
    parameters: {
      type: 'object',
      properties: {
        city: { type: 'string' },
        days: { type: 'integer', minimum: 1, maximum: 14 },
      },
      required: ['city', 'days'],
    },
  },
}

describe.skipIf(lacks('llama-server'))('velo serve pipeline: cache, queue, tool calls', () => {
  let started: Started
  let chat: string

  beforeAll(async () => {
    started = await serve({
      managed: {
        models: {
          'velo-tiny': {
            path: required(rig().tinyModel, 'tiny model'),
            args: ['--ctx-size', '4096', '--parallel', '4', '--jinja'],
          },
        },
      },
      toolCalls: {
        enforce: { models: ['velo-tiny'], maxStringLength: 24, maxArrayItems: 3, allowText: false },
      },
    })
    chat = `${started.velo.url}/v1/chat/completions`
  })
  afterAll(async () => {
    await started?.velo.close()
  })

  const deterministic = (stream: boolean) => ({
    model: 'velo-tiny',
    messages: [{ role: 'user', content: `Tell me about caches (stream ${stream})` }],
    temperature: 0,
    max_tokens: 12,
    stream,
  })

  it('answers a repeated deterministic chat from the cache, byte for byte', async () => {
    const first = await post(chat, deterministic(false))
    expect(first.status).toBe(200)
    expect(first.headers['x-velo-cache']).toBe('miss')
    const second = await post(chat, deterministic(false))
    expect(second.status).toBe(200)
    expect(second.headers['x-velo-cache']).toBe('hit')
    expect(second.text).toBe(first.text)
    expect(second.headers['x-velo-queue-ms']).toBe('0')
  })

  it('replays a repeated streamed chat as the same stream', async () => {
    const first = await post(chat, deterministic(true))
    expect(first.headers['x-velo-cache']).toBe('miss')
    expect(first.text).toContain('data: [DONE]')
    const second = await post(chat, deterministic(true))
    expect(second.headers['x-velo-cache']).toBe('hit')
    expect(second.headers['content-type']).toContain('text/event-stream')
    expect(second.text).toBe(first.text)
  })

  it('bypasses the cache on Cache-Control: no-cache', async () => {
    const bypassed = await post(chat, deterministic(false), { 'cache-control': 'no-cache' })
    expect(bypassed.status).toBe(200)
    expect(bypassed.headers['x-velo-cache']).toBe('bypass')
  })

  it('queues 12 concurrent streams in velo, at most capacity running, all completing', async () => {
    const runs = Array.from({ length: 12 }, (_, index) =>
      post(chat, {
        model: 'velo-tiny',
        messages: [{ role: 'user', content: `Story number ${index}` }],
        temperature: 1,
        max_tokens: 160,
        ignore_eos: true,
        stream: true,
      }),
    )
    let done = false
    const all = Promise.all(runs).finally(() => {
      done = true
    })
    let maxQueue = 0
    const seen: { busy: number; total: number }[] = []
    while (!done) {
      const model = await modelStatus(started.velo, 'velo-tiny')
      maxQueue = Math.max(maxQueue, model.queueDepth)
      seen.push({ busy: model.slotsBusy, total: model.slotsTotal })
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    const results = await all
    expect(maxQueue).toBeGreaterThan(0)
    for (const sample of seen) expect(sample.busy).toBeLessThanOrEqual(sample.total)
    expect(seen.some((sample) => sample.total === 4)).toBe(true)
    for (const result of results) {
      expect(result.status).toBe(200)
      expect(result.headers['x-velo-cache']).toBe('bypass')
      expect(Number(result.headers['x-velo-queue-ms'])).toBeGreaterThanOrEqual(0)
    }
    // Requests that waited for a slot say so.
    expect(results.some((result) => Number(result.headers['x-velo-queue-ms']) > 0)).toBe(true)
    const after = await modelStatus(started.velo, 'velo-tiny')
    expect(after.queueDepth).toBe(0)
    expect(after.slotsBusy).toBe(0)
  })

  it('enforcement mode: the synthetic model returns a schema-valid tool call through velo', async () => {
    const ajv = new Ajv({ strict: false })
    for (const seed of [1, 2]) {
      const answer = await post(chat, {
        model: 'velo-tiny',
        messages: [
          { role: 'system', content: 'You call tools.' },
          { role: 'user', content: 'What is the weather in Paris for the next three days?' },
        ],
        tools: [WEATHER_TOOL],
        tool_choice: 'required',
        seed,
        max_tokens: 400,
      })
      expect(answer.status, answer.text).toBe(200)
      const body = JSON.parse(answer.text) as {
        choices: {
          finish_reason: string
          message: { tool_calls?: { id: string; function: { name: string; arguments: string } }[] }
        }[]
      }
      const choice = body.choices[0]
      expect(choice?.finish_reason).toBe('tool_calls')
      const calls = choice?.message.tool_calls ?? []
      expect(calls).toHaveLength(1)
      expect(calls[0]?.function.name).toBe('get_weather')
      expect(calls[0]?.id).toMatch(/\S+/)
      const args = JSON.parse(calls[0]?.function.arguments ?? 'null') as unknown
      expect(ajv.validate(WEATHER_TOOL.function.parameters, args), ajv.errorsText()).toBe(true)
    }
  })

  it('enforcement mode, streamed: tool-call deltas come back assembled and schema-valid', async () => {
    const answer = await post(chat, {
      model: 'velo-tiny',
      messages: [
        { role: 'system', content: 'You call tools.' },
        { role: 'user', content: 'What is the weather in Paris for the next three days?' },
      ],
      tools: [WEATHER_TOOL],
      tool_choice: 'required',
      seed: 11,
      max_tokens: 400,
      stream: true,
    })
    expect(answer.status, answer.text).toBe(200)
    expect(answer.headers['content-type']).toContain('text/event-stream')
    const events = answer.text
      .split('\n\n')
      .map((event) => event.trim())
      .filter((event) => event.startsWith('data: '))
      .map((event) => event.slice('data: '.length))
    expect(events.at(-1)).toBe('[DONE]')
    let content = ''
    let name = ''
    let args = ''
    let finish: string | undefined
    for (const data of events.slice(0, -1)) {
      const event = JSON.parse(data) as {
        choices: { delta: Record<string, unknown>; finish_reason: string | null }[]
      }
      for (const choice of event.choices) {
        if (choice.finish_reason) finish = choice.finish_reason
        if (typeof choice.delta['content'] === 'string') content += choice.delta['content']
        for (const call of (choice.delta['tool_calls'] ?? []) as {
          function: { name?: string; arguments?: string }
        }[]) {
          name += call.function.name ?? ''
          args += call.function.arguments ?? ''
        }
      }
    }
    expect(content).toBe('')
    expect(finish).toBe('tool_calls')
    expect(name).toBe('get_weather')
    const ajv = new Ajv({ strict: false })
    expect(ajv.validate(WEATHER_TOOL.function.parameters, JSON.parse(args)), ajv.errorsText()).toBe(true)
  })
})

/** Agents side by side, each alternating between two models; how many loads it took. */
async function alternatingAgents(
  started: Started,
  agents = 6,
  rounds = 4,
): Promise<{ loads: number; mostLoaded: number }> {
  const statuses: number[] = []
  // Sample how many llama-server processes run (starting, ready or stopping) while the agents run.
  let running = true
  let mostLoaded = 0
  const sampler = (async () => {
    while (running) {
      const held = started.velo.managed.status().filter((model) => model.pid !== undefined).length
      mostLoaded = Math.max(mostLoaded, held)
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
  })()
  await Promise.all(
    Array.from({ length: agents }, async (_, agent) => {
      for (let round = 0; round < rounds; round++) {
        const model = (agent + round) % 2 === 0 ? 'model-a' : 'model-b'
        const result = await post(`${started.velo.url}/v1/chat/completions`, {
          model,
          messages: [{ role: 'user', content: `Agent ${agent}, step ${round}` }],
          max_tokens: 8,
        })
        expect(result.status, result.text).toBe(200)
        statuses.push(result.status)
      }
    }),
  )
  running = false
  await sampler
  expect(statuses).toHaveLength(agents * rounds)
  const loads = (model: string) =>
    started.logs.filter((line) => line.msg === `loaded ${model}` && line.model === model).length
  expect(loads('model-a')).toBeGreaterThanOrEqual(1)
  expect(loads('model-b')).toBeGreaterThanOrEqual(1)
  return { loads: loads('model-a') + loads('model-b'), mostLoaded }
}

describe.skipIf(lacks('llama-server'))('velo serve model affinity with managed maxLoaded 1', () => {
  const managedPair = (affinity: boolean) => {
    const path = required(rig().tinyModel, 'tiny model')
    const args = ['--ctx-size', '1024', '--parallel', '2']
    return serve({
      managed: { maxLoaded: 1, models: { 'model-a': { path, args }, 'model-b': { path, args } } },
      scheduler: { affinity: { enabled: affinity } },
    })
  }

  it('serves agents alternating A,B,A,B,... without loading a model per request', async () => {
    const started = await managedPair(true)
    try {
      const { loads, mostLoaded } = await alternatingAgents(started)
      // maxLoaded 1 holds: one model at a time on the machine.
      expect(mostLoaded).toBe(1)
      // Queued requests of the loaded model are served before switching: about one load per round.
      expect(loads).toBeLessThanOrEqual(24 / 3)
    } finally {
      await started.velo.close()
    }
  })

  it('keeps maxLoaded 1 in arrival order too: a start waits for the model that is loading', async () => {
    const started = await managedPair(false)
    try {
      const { loads, mostLoaded } = await alternatingAgents(started, 4, 2)
      expect(mostLoaded).toBe(1)
      // Arrival order swaps models far more often than affinity does; every request still completed.
      expect(loads).toBeGreaterThanOrEqual(2)
    } finally {
      await started.velo.close()
    }
  })
})

describe.skipIf(lacks('llama-server'))('admission capacity of an OpenAI-compatible upstream', () => {
  let upstream: LlamaServer
  let started: Started
  beforeAll(async () => {
    // --parallel 6: more than the scheduler's default capacity (4), so a default would throttle it.
    upstream = await startRigLlamaServer({ args: ['--parallel', '6'], alias: 'velo-tiny' })
    started = await serve({ upstreams: [{ url: `${upstream.url}/v1` }] })
  })
  afterAll(async () => {
    await started?.velo.close()
    await upstream?.stop()
  })

  it('admits as many requests as llama-server has slots (from /props), not the default', async () => {
    const model = await modelStatus(started.velo, 'velo-tiny')
    expect(model.kind).toBe('openai')
    expect(model.slotsTotal).toBe(6)
  })
})
