import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { LlamaServer } from '../../src/core/engine/llama-server.js'
import {
  type CacheEvent,
  createResponseCache,
  DEFAULT_CACHE_SETTINGS,
} from '../../src/proxy/cache/response-cache.js'
import type { CachedResponse } from '../../src/proxy/pipeline-types.js'
import { lacks, startRigLlamaServer } from '../helpers/rig.js'

/**
 * The semantic cache's namespaces with real embeddings: llama-server `--embeddings` serving the tiny
 * synthetic model. Its vectors are real but carry no meaning (random weights), which is enough to
 * show that a different system prompt, tool set or response format never hits, even for the very
 * same words, and that the default threshold keeps unrelated text out. Paraphrase quality is a
 * property of the embedding model a user configures; the unit tests cover the paraphrase path with a
 * deterministic test embedder.
 */
describe.skipIf(lacks('llama-server'))('semantic cache with llama-server embeddings', () => {
  let server: LlamaServer
  const similarities: number[] = []

  beforeAll(async () => {
    server = await startRigLlamaServer({ args: ['--embeddings', '--pooling', 'mean'] })
  })
  afterAll(async () => {
    await server?.stop()
  })

  async function embed(texts: string[]): Promise<number[][]> {
    const response = await request(`${server.url}/v1/embeddings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'velo-tiny', input: texts }),
    })
    const parsed = (await response.body.json()) as { data: { index: number; embedding: number[] }[] }
    return [...parsed.data].sort((a, b) => a.index - b.index).map((item) => item.embedding)
  }

  const tools = [
    {
      type: 'function',
      function: {
        name: 'get_weather',
        parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
      },
    },
  ]
  const ask = (question: string, overrides: Record<string, unknown> = {}) => ({
    model: 'velo-tiny',
    temperature: 0,
    max_tokens: 32,
    tools,
    messages: [
      { role: 'system', content: 'You answer questions about the weather.' },
      { role: 'user', content: question },
    ],
    ...overrides,
  })
  const answer: CachedResponse = {
    status: 200,
    contentType: 'application/json',
    body: '{"choices":[{"message":{"content":"Sunny"}}]}',
    chunks: undefined,
  }

  it('hits within a namespace and never across system prompt, tools or response format', async () => {
    const cache = createResponseCache(
      { semantic: { ...DEFAULT_CACHE_SETTINGS.semantic, enabled: true } },
      {
        embed,
        onEvent: (event: CacheEvent) => {
          if (event.type === 'similarity') similarities.push(event.value)
        },
      },
    )
    const question = 'What is the weather in Paris today?'
    const first = await cache.lookup('/v1/chat/completions', ask(question), {})
    expect(first.outcome).toBe('miss')
    expect(first.semantic?.vector).toHaveLength(256)
    await cache.store(first, answer)

    // Same namespace, same question, different max_tokens: not an exact hit, but a semantic one.
    const same = await cache.lookup('/v1/chat/completions', ask(question, { max_tokens: 64 }), {})
    expect(same.outcome).toBe('semantic-hit')
    expect(same.response?.similarity).toBeGreaterThanOrEqual(0.999)
    expect(same.response?.body).toBe(answer.body)

    const otherSystem = ask(question)
    otherSystem.messages[0] = { role: 'system', content: 'You are a pirate.' }
    const otherTools = [{ type: 'function', function: { name: 'get_time', parameters: { type: 'object' } } }]
    for (const variant of [
      otherSystem,
      ask(question, { tools: otherTools }),
      ask(question, { tools: undefined }),
      ask(question, { response_format: { type: 'json_object' } }),
    ]) {
      expect((await cache.lookup('/v1/chat/completions', variant, {})).outcome).toBe('miss')
    }
    // Only the same-namespace lookup searched at all: the others had no index to search.
    expect(similarities).toHaveLength(1)
  })

  it('keeps unrelated text out at the default threshold', async () => {
    const cache = createResponseCache(
      { semantic: { ...DEFAULT_CACHE_SETTINGS.semantic, enabled: true } },
      { embed },
    )
    const first = await cache.lookup('/v1/chat/completions', ask('What is the weather in Paris today?'), {})
    await cache.store(first, answer)
    const unrelated = await cache.lookup('/v1/chat/completions', ask('Explain monads in Haskell'), {})
    expect(unrelated.outcome).toBe('miss')
    const [a, b] = await embed(['What is the weather in Paris today?', 'Explain monads in Haskell'])
    const dot = (a ?? []).reduce((sum, x, i) => sum + x * (b?.[i] ?? 0), 0)
    const norm = (v: number[] | undefined) => Math.sqrt((v ?? []).reduce((sum, x) => sum + x * x, 0))
    const similarity = dot / (norm(a) * norm(b))
    // Random-weight vectors of unrelated text are still fairly close: why the default is strict.
    expect(similarity).toBeLessThan(DEFAULT_CACHE_SETTINGS.semantic.threshold)
  })
})
