import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/core/config/load.js'
import type { VeloConfigInput } from '../../src/core/config/schema.js'
import type { LlamaServer } from '../../src/core/engine/llama-server.js'
import type { VeloServer } from '../../src/proxy/server.js'
import { lacks, required, rig, startRigLlamaServer } from '../helpers/rig.js'
import { alive, startVelo, waitFor } from './serve-helpers.js'

/** Reloading velo serve's config while it serves: the rig's llama-servers as two upstreams. */

function client(velo: VeloServer, apiKey: string): OpenAI {
  return new OpenAI({ baseURL: `${velo.url}/v1`, apiKey, maxRetries: 0 })
}

describe.skipIf(lacks('llama-server'))('velo serve config reload', () => {
  let first: LlamaServer
  let second: LlamaServer
  let velo: VeloServer
  const base = (upstream: LlamaServer, key: string): VeloConfigInput => ({
    server: { port: 0 },
    upstreams: [{ url: `${upstream.url}/v1`, name: upstream === first ? 'first' : 'second' }],
    cache: { exact: { enabled: false } },
    auth: { keys: [{ key, name: key }] },
  })
  beforeAll(async () => {
    first = await startRigLlamaServer()
    second = await startRigLlamaServer()
    velo = await startVelo(base(first, 'sk-old'))
  }, 120_000)
  afterAll(async () => {
    await velo?.close()
    await Promise.all([first?.stop(), second?.stop()])
  })

  it('applies a new config to new requests while a stream started before it finishes on the old one', async () => {
    // ignore_eos is llama-server's own field: all 400 tokens come, so the stream outlasts the reload.
    const request: OpenAI.ChatCompletionCreateParamsStreaming & { ignore_eos: boolean } = {
      model: 'velo-tiny',
      messages: [{ role: 'user', content: 'Count for a long time.' }],
      max_tokens: 400,
      stream: true,
      ignore_eos: true,
    }
    const stream = await client(velo, 'sk-old').chat.completions.create(request)
    const iterator = stream[Symbol.asyncIterator]()
    const head = await iterator.next()
    expect(head.done).toBe(false)
    // Mid-stream: the old key goes, the upstream changes, an alias appears.
    const result = await velo.reload(
      parseConfig({ ...base(second, 'sk-new'), aliases: { fast: 'velo-tiny' }, server: { port: 1 } }),
    )
    const reloadedAt = performance.now()
    expect(result.applied).toEqual(expect.arrayContaining(['upstreams', 'aliases', 'auth']))
    expect(result.needsRestart).toEqual(['server.port'])
    let text = ''
    let finish: string | null | undefined
    let lastChunkAt = 0
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
      text += next.value.choices[0]?.delta.content ?? ''
      finish = next.value.choices[0]?.finish_reason ?? finish
      lastChunkAt = performance.now()
    }
    // The stream went on after the reload and ended as the old config's request would have.
    expect(lastChunkAt).toBeGreaterThan(reloadedAt)
    expect(finish).toBe('length')
    expect(text.length).toBeGreaterThan(0)

    const refused = await client(velo, 'sk-old')
      .chat.completions.create({
        model: 'velo-tiny',
        messages: [{ role: 'user', content: 'hi' }],
        max_tokens: 2,
      })
      .catch((error: unknown) => error)
    expect(refused).toBeInstanceOf(OpenAI.AuthenticationError)
    const { response, data } = await client(velo, 'sk-new')
      .chat.completions.create({ model: 'fast', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 })
      .withResponse()
    expect(data.choices[0]?.message).toBeDefined()
    expect(response.headers.get('x-velo-upstream')).toBe('second')
  })

  it('reports an unchanged config as nothing applied', async () => {
    const current = parseConfig({
      ...base(second, 'sk-new'),
      aliases: { fast: 'velo-tiny' },
      server: { port: 1 },
    })
    expect(await velo.reload(current)).toEqual({ applied: [], needsRestart: [] })
  })

  it('starts serving a managed model the reload adds, and forgets one it removes', async () => {
    const withManaged = (models: Record<string, { path: string }>) =>
      parseConfig({
        ...base(second, 'sk-new'),
        aliases: { fast: 'velo-tiny' },
        server: { port: 1 },
        managed: { models },
      })
    const added = await velo.reload(withManaged({ extra: { path: required(rig().tinyModel, 'tiny model') } }))
    expect(added.applied).toEqual(['managed.models'])
    const answer = await client(velo, 'sk-new').chat.completions.create({
      model: 'extra',
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 2,
    })
    expect(answer.choices).toHaveLength(1)
    const pid = velo.managed.status().find((model) => model.id === 'extra')?.pid
    expect(pid).toBeGreaterThan(0)
    expect((await velo.reload(withManaged({}))).applied).toEqual(['managed.models'])
    await waitFor('the removed model to go', () => !velo.managed.has('extra'))
    const gone = await client(velo, 'sk-new')
      .chat.completions.create({ model: 'extra', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 })
      .catch((error: unknown) => error)
    expect(gone).toBeInstanceOf(OpenAI.NotFoundError)
    expect(alive(pid ?? 0)).toBe(false)
  })
})
