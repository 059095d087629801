import { Ajv } from 'ajv'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/core/config/load.js'
import type { VeloConfigInput } from '../../src/core/config/schema.js'
import type { LlamaServer } from '../../src/core/engine/llama-server.js'
import type { AppliedProfile, ProfileLookup } from '../../src/proxy/profiles.js'
import { ToolCallRepairer } from '../../src/proxy/repair/tool-call-repair.js'
import { pickByPrefix, prefixKeys } from '../../src/proxy/scheduler/prefix-affinity.js'
import { createScheduler } from '../../src/proxy/scheduler/scheduler.js'
import { createVeloServer, type VeloServer } from '../../src/proxy/server.js'
import type { VeloStatus } from '../../src/proxy/status-types.js'
import { lacks, type RigOllama, required, rig, startRigLlamaServer, startRigOllama } from '../helpers/rig.js'
import { getJson, postJson, waitFor } from './serve-helpers.js'

/**
 * velo serve's scheduler and tool-call stages in front of the rig's real engines: admission capacity
 * from the config and profiles (Ollama), prefix affinity on a llama-server upstream, enforcement
 * through Ollama.
 */

/** velo serve with the scheduler and tool-call repair it gets from the config, as `velo serve` builds them. */
async function startVelo(input: VeloConfigInput, profiles?: ProfileLookup): Promise<VeloServer> {
  const config = parseConfig({ ...input, server: { port: 0, ...input.server } })
  const velo = createVeloServer({
    config,
    version: 'test',
    scheduler: createScheduler(config.scheduler),
    repairer: new ToolCallRepairer(config.toolCalls),
    profiles,
    autoOllama: false,
    refreshIntervalMs: 0,
  })
  await velo.start()
  return velo
}

async function slotsTotal(velo: VeloServer, model: string): Promise<number | undefined> {
  const { body } = await getJson<VeloStatus>(`${velo.url}/velo/status`)
  return body.models.find((entry) => entry.id === model || entry.id === `${model}:latest`)?.slotsTotal
}

describe.skipIf(lacks('ollama'))('velo serve in front of Ollama', () => {
  let ollama: RigOllama
  beforeAll(async () => {
    ollama = await startRigOllama()
    const gguf = required(rig().tinyModel, 'tiny model')
    await ollama.create('velo-tiny', gguf)
    await ollama.create('velo-tiny-2', gguf)
  }, 300_000)
  afterAll(async () => {
    await ollama?.stop()
  })

  it("admits as many requests per model as the upstream's `parallel`, else its profile's", async () => {
    const profile = (parallel: number): AppliedProfile => ({
      id: `p${parallel}`,
      llamaServerArgs: [],
      ollamaOptions: {},
      parallel,
    })
    // A profile for every model: it sizes only the model whose upstream does not say its parallelism.
    const profiles: ProfileLookup = {
      forManaged: async () => undefined,
      forUpstream: async (model) => profile(model.startsWith('velo-tiny-2') ? 3 : 5),
    }
    const velo = await startVelo(
      {
        upstreams: [
          { url: ollama.url, kind: 'ollama', models: ['velo-tiny'], parallel: 2 },
          { url: ollama.url, kind: 'ollama', name: 'second', models: ['velo-tiny-2'] },
        ],
      },
      profiles,
    )
    try {
      expect(await slotsTotal(velo, 'velo-tiny')).toBe(2)
      await waitFor(
        'the profile to size velo-tiny-2',
        async () => (await slotsTotal(velo, 'velo-tiny-2')) === 3,
      )
      // The configured value still wins over its model's profile.
      expect(await slotsTotal(velo, 'velo-tiny')).toBe(2)
    } finally {
      await velo.close()
    }
  })

  it('enforcement makes the synthetic model answer a schema-valid tool call through velo', async () => {
    const tool = {
      type: 'function',
      function: {
        name: 'pick',
        description: 'Pick a digit',
        parameters: {
          type: 'object',
          properties: { n: { type: 'integer', minimum: 0, maximum: 9 } },
          required: ['n'],
        },
      },
    }
    const velo = await startVelo({
      upstreams: [{ url: ollama.url, kind: 'ollama', models: ['velo-tiny'] }],
      toolCalls: { enforce: { models: ['*'], allowText: false } },
    })
    try {
      const { status, body } = await postJson<{
        message: { content: string; tool_calls?: { function: { name: string; arguments: unknown } }[] }
      }>(`${velo.url}/api/chat`, {
        model: 'velo-tiny',
        messages: [{ role: 'user', content: 'Pick a digit.' }],
        tools: [tool],
        stream: false,
        // Ollama on two CPU cores samples a constrained token in about a third of a second: few tokens.
        options: { seed: 1, num_predict: 40 },
      })
      expect(status, JSON.stringify(body)).toBe(200)
      const calls = body.message.tool_calls ?? []
      expect(calls).toHaveLength(1)
      expect(calls[0]?.function.name).toBe('pick')
      const ajv = new Ajv({ strict: false })
      expect(ajv.validate(tool.function.parameters, calls[0]?.function.arguments), ajv.errorsText()).toBe(
        true,
      )
      expect(body.message.content).toBe('')
    } finally {
      await velo.close()
    }
  }, 300_000)
})

describe.skipIf(lacks('llama-server'))('prefix affinity on a llama-server upstream', () => {
  /** No slot choice of its own (similarity off, no RAM prompt cache shared between slots). */
  let server: LlamaServer
  /** Two more as llama-server runs by default, each choosing the slot whose cache matches best. */
  let left: LlamaServer
  let right: LlamaServer
  beforeAll(async () => {
    ;[server, left, right] = await Promise.all([
      startRigLlamaServer({ args: ['--slot-prompt-similarity', '0', '--cache-ram', '0'] }),
      startRigLlamaServer(),
      startRigLlamaServer(),
    ])
  })
  afterAll(async () => {
    await Promise.all([server?.stop(), left?.stop(), right?.stop()])
  })

  const system = (topic: string): string =>
    `You are a careful assistant for ${topic}. ${'Answer briefly, cite the manual, and never guess about units, dates or names. '.repeat(12)}`
  const question = (topic: string): string => `What is the history of ${topic}?`
  const chat = (
    url: string,
    topic: string,
    question: string,
    later: { role: string; content: string }[] = [],
  ) =>
    postJson<{ timings?: { cache_n?: number; prompt_n?: number } }>(`${url}/v1/chat/completions`, {
      model: 'velo-tiny',
      messages: [{ role: 'system', content: system(topic) }, { role: 'user', content: question }, ...later],
      max_tokens: 2,
      temperature: 0,
    })

  it('pins requests that share a long system prompt to one slot, so the second reuses its cache', async () => {
    // The control: straight to llama-server, the second request lands on the other (least recently
    // used) slot and recomputes the system prompt. The same slot twice through velo is velo's doing.
    await chat(server.url, 'boats', 'How long is a knot?')
    const direct = await chat(server.url, 'boats', 'What is a keel?')
    const directCached = direct.body.timings?.cache_n ?? 0

    const velo = await startVelo({ upstreams: [{ url: server.url, kind: 'openai' }] })
    try {
      expect(await slotsTotal(velo, 'velo-tiny')).toBe(2)
      const first = await chat(velo.url, 'trains', 'How wide is standard gauge?')
      const second = await chat(velo.url, 'trains', 'What is a bogie?')
      expect(first.status).toBe(200)
      expect(second.status).toBe(200)
      const systemTokens = first.body.timings?.prompt_n ?? 0
      expect(systemTokens).toBeGreaterThan(100)
      const cached = second.body.timings?.cache_n ?? 0
      // Everything up to the user turn came from the slot's cache; the control reused at most the
      // chat template's first tokens.
      expect(cached).toBeGreaterThan(systemTokens / 2)
      expect(directCached).toBeLessThan(systemTokens / 2)
    } finally {
      await velo.close()
    }
  })

  it('sends every turn of a conversation to one upstream of several, and spreads conversations', async () => {
    const velo = await startVelo({
      upstreams: [
        { url: left.url, kind: 'openai', name: 'left' },
        { url: right.url, kind: 'openai', name: 'right' },
      ],
    })
    try {
      expect(await slotsTotal(velo, 'velo-tiny')).toBe(4)
      // Each conversation's home is the rendezvous pick of its prefix key over the upstreams (whose
      // ports change from run to run): take conversations until both upstreams are some one's home.
      const names = new Map([
        [left.url, 'left'],
        [right.url, 'right'],
      ])
      const conversations: { topic: string; home: string | undefined }[] = []
      for (const topic of Array.from({ length: 24 }, (_, i) => `topic ${i}`)) {
        const [key] = prefixKeys({
          model: 'velo-tiny',
          messages: [
            { role: 'system', content: system(topic) },
            { role: 'user', content: question(topic) },
          ],
        })
        const home = names.get(pickByPrefix(key ?? '', [left.url, right.url]) ?? '')
        if (conversations.some((seen) => seen.home === home)) continue
        conversations.push({ topic, home })
        if (conversations.length === 2) break
      }
      expect(conversations.map(({ home }) => home).sort()).toEqual(['left', 'right'])
      for (const { topic, home } of conversations) {
        const first = await chat(velo.url, topic, question(topic))
        const second = await chat(velo.url, topic, question(topic), [
          { role: 'assistant', content: 'It is long.' },
          { role: 'user', content: 'Tell me more.' },
        ])
        expect(first.status).toBe(200)
        // Requests one at a time would all go to the first upstream by load alone.
        expect(first.headers['x-velo-upstream'], topic).toBe(home)
        expect(second.headers['x-velo-upstream'], topic).toBe(home)
        expect(second.body.timings?.cache_n ?? 0).toBeGreaterThan((first.body.timings?.prompt_n ?? 0) / 2)
      }
    } finally {
      await velo.close()
    }
  })
})
