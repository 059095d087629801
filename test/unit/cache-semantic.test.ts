import { describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/core/config/load.js'
import { Auth } from '../../src/proxy/auth/index.js'
import { internalAuthorization } from '../../src/proxy/auth/internal.js'
import { Hnsw } from '../../src/proxy/cache/hnsw.js'
import { createResponseCache } from '../../src/proxy/cache/response-cache.js'
import { SemanticIndex } from '../../src/proxy/cache/semantic-index.js'
import type { CachedResponse } from '../../src/proxy/pipeline-types.js'

/** A seeded PRNG (mulberry32) so the graphs and data are the same on every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Clustered data, as embeddings are: points with noise around 20 centres. */
function clusters(dim: number, random: () => number): (count: number) => number[][] {
  const centres = Array.from({ length: 20 }, () => Array.from({ length: dim }, () => random() * 2 - 1))
  return (count) =>
    Array.from({ length: count }, (_, i) => {
      const centre = centres[i % centres.length] ?? []
      return centre.map((x) => x + (random() * 2 - 1) * 0.6)
    })
}

function randomVectors(count: number, dim: number, random: () => number): number[][] {
  return clusters(dim, random)(count)
}

function cosine(a: number[], b: number[]): number {
  let dot = 0
  let na = 0
  let nb = 0
  for (let i = 0; i < a.length; i++) {
    const x = a[i] ?? 0
    const y = b[i] ?? 0
    dot += x * y
    na += x * x
    nb += y * y
  }
  return dot / Math.sqrt(na * nb)
}

describe('Hnsw', () => {
  it('finds the true nearest neighbour for nearly every query without scanning every vector', () => {
    const random = prng(7)
    const generate = clusters(48, random)
    const data = generate(2000)
    const index = new Hnsw(48, { random })
    for (const vector of data) index.add(vector)
    // Queries near the data (a paraphrase is near its original), not in empty space.
    const queries = generate(100)
    let correct = 0
    let evaluations = 0
    for (const query of queries) {
      let best = -1
      let bestSim = -2
      data.forEach((vector, i) => {
        const sim = cosine(query, vector)
        if (sim > bestSim) {
          bestSim = sim
          best = i
        }
      })
      const [found] = index.search(query, 1)
      evaluations += index.lastSearchDistanceCount
      if (found?.id === best) correct++
      expect(found?.similarity).toBeCloseTo(index.search(query, 1)[0]?.similarity ?? 0, 5)
    }
    expect(correct).toBeGreaterThanOrEqual(95)
    // An index, not a linear scan: a query looks at a fraction of the 2000 vectors.
    expect(evaluations / queries.length).toBeLessThan(2000 / 3)
  })

  it('never returns a removed vector and reports cosine similarity', () => {
    const index = new Hnsw(3)
    const a = index.add([1, 0, 0])
    index.add([0, 1, 0])
    expect(index.search([2, 0.1, 0], 1)[0]).toMatchObject({ id: a })
    expect(index.search([1, 0, 0], 1)[0]?.similarity).toBeCloseTo(1, 6)
    index.remove(a)
    expect(index.search([1, 0, 0], 1)[0]?.id).not.toBe(a)
    expect(() => index.add([1, 2])).toThrow(/3 dimensions/)
  })

  it('never reports a similarity above 1, even for a vector against itself after float32 rounding', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const vector = Array.from({ length: 256 }, (_, i) => Math.sin(seed * 1000 + i * 7.3))
      const index = new Hnsw(256)
      index.add(vector)
      const similarity = index.search(vector, 1)[0]?.similarity ?? 0
      expect(similarity).toBeLessThanOrEqual(1)
      expect(similarity).toBeGreaterThan(0.9999)
    }
  })
})

describe('SemanticIndex', () => {
  it('keeps namespaces apart, bounds its size and rebuilds after many removals', () => {
    const random = prng(3)
    const index = new SemanticIndex({ maxEntries: 50, ttlMs: 60_000, random })
    const vectors = randomVectors(120, 16, random)
    vectors.forEach((vector, i) => {
      index.add(i % 2 === 0 ? 'even' : 'odd', vector, `key-${i}`)
    })
    expect(index.size).toBe(50)
    const last = vectors[119] ?? []
    expect(index.search('odd', last)).toMatchObject({ key: 'key-119' })
    expect(index.search('even', last)?.key).not.toBe('key-119')
    expect(index.search('none', last)).toBeUndefined()
    // Replacing a key keeps one vector for it.
    index.add('odd', vectors[0] ?? [], 'key-119')
    expect(index.size).toBe(50)
    expect(index.search('odd', vectors[0] ?? [])).toMatchObject({
      key: 'key-119',
      similarity: expect.closeTo(1, 5),
    })
  })

  it('expires entries after the TTL', () => {
    let now = 0
    const index = new SemanticIndex({ maxEntries: 10, ttlMs: 1000, now: () => now })
    index.add('ns', [1, 0], 'k')
    expect(index.search('ns', [1, 0])?.key).toBe('k')
    now = 1001
    expect(index.search('ns', [1, 0])).toBeUndefined()
    expect(index.size).toBe(0)
  })
})

/**
 * A deterministic test embedder (not a language model): a bag of content words, lower-cased, with
 * plural -s stripped and stop words dropped, hashed into 256 dimensions. Paraphrases that keep the
 * content words land close together; a question about something else does not. Real semantic quality
 * depends on the configured embedding model; this only makes the cache's behaviour testable.
 */
const STOP = new Set([
  'what',
  'is',
  'the',
  'of',
  'a',
  'an',
  'me',
  'tell',
  'please',
  'can',
  'you',
  'which',
  'to',
])
function testEmbed(texts: string[]): Promise<number[][]> {
  return Promise.resolve(
    texts.map((text) => {
      const vector = new Array<number>(256).fill(0)
      for (const raw of text.toLowerCase().match(/[a-z]+/g) ?? []) {
        if (STOP.has(raw)) continue
        const word = raw.length > 3 ? raw.replace(/s$/, '') : raw
        let h = 0
        for (const ch of word) h = (h * 31 + ch.charCodeAt(0)) >>> 0
        vector[h % 256] = (vector[h % 256] ?? 0) + 1
      }
      return vector
    }),
  )
}

const CHAT = '/v1/chat/completions'
const answer: CachedResponse = {
  status: 200,
  contentType: 'application/json',
  body: '{"answer":"Paris"}',
  chunks: undefined,
}
const tools = [
  { type: 'function', function: { name: 'search', parameters: { type: 'object', properties: {} } } },
]

function ask(question: string, overrides: Record<string, unknown> = {}) {
  return {
    model: 'velo-tiny',
    temperature: 0,
    messages: [
      { role: 'system', content: 'Answer geography questions.' },
      { role: 'user', content: question },
    ],
    ...overrides,
  }
}

describe('semantic cache (deterministic test embedder, threshold 0.8)', () => {
  const settings = {
    semantic: { enabled: true, threshold: 0.8, maxEntries: 1000, models: ['*'] },
  }

  it('answers a paraphrase above the threshold and reports the similarity', async () => {
    const cache = createResponseCache(settings, { embed: testEmbed })
    const first = await cache.lookup(CHAT, ask('What is the capital of France?'), {})
    expect(first.outcome).toBe('miss')
    await cache.store(first, answer)
    const paraphrase = await cache.lookup(CHAT, ask('Tell me the capital city of France, please'), {})
    expect(paraphrase.outcome).toBe('semantic-hit')
    expect(paraphrase.response?.body).toBe(answer.body)
    // {capital, france} against {capital, city, france}: 2 / sqrt(6)
    expect(paraphrase.response?.similarity).toBeCloseTo(2 / Math.sqrt(6), 5)
    expect(cache.stats()).toMatchObject({ semanticHits: 1, semanticEntries: 1 })
  })

  it('does not answer a different question below the threshold', async () => {
    const similarities: number[] = []
    const cache = createResponseCache(settings, {
      embed: testEmbed,
      onEvent: (event) => {
        if (event.type === 'similarity') similarities.push(event.value)
      },
    })
    const first = await cache.lookup(CHAT, ask('What is the capital of France?'), {})
    await cache.store(first, answer)
    const other = await cache.lookup(CHAT, ask('What is the capital of Germany?'), {})
    expect(other.outcome).toBe('miss')
    expect(similarities).toEqual([expect.closeTo(0.5, 5)])
  })

  it('never answers across a different system prompt, tool set or response format, even for the same words', async () => {
    const cache = createResponseCache(settings, { embed: testEmbed })
    const first = await cache.lookup(CHAT, ask('What is the capital of France?', { tools }), {})
    await cache.store(first, answer)
    const sameWords = 'What is the capital of France?!'
    expect((await cache.lookup(CHAT, ask(sameWords, { tools }), {})).outcome).toBe('semantic-hit')
    const otherSystem = ask(sameWords, { tools })
    otherSystem.messages[0] = { role: 'system', content: 'Answer in French.' }
    expect((await cache.lookup(CHAT, otherSystem, {})).outcome).toBe('miss')
    expect((await cache.lookup(CHAT, ask(sameWords), {})).outcome).toBe('miss')
    const otherTools = [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object' } } }]
    expect((await cache.lookup(CHAT, ask(sameWords, { tools: otherTools }), {})).outcome).toBe('miss')
    expect(
      (await cache.lookup(CHAT, ask(sameWords, { tools, response_format: { type: 'json_object' } }), {}))
        .outcome,
    ).toBe('miss')
    expect((await cache.lookup(CHAT, ask(sameWords, { tools, model: 'other' }), {})).outcome).toBe('miss')
  })

  it('only answers semantically for the models it is enabled for', async () => {
    const cache = createResponseCache(
      { semantic: { enabled: true, threshold: 0.8, maxEntries: 100, models: ['big'] } },
      { embed: testEmbed },
    )
    for (const model of ['big', 'velo-tiny']) {
      const first = await cache.lookup(CHAT, ask('What is the capital of France?', { model }), {})
      await cache.store(first, answer)
    }
    expect((await cache.lookup(CHAT, ask('capital city of France', { model: 'big' }), {})).outcome).toBe(
      'semantic-hit',
    )
    expect((await cache.lookup(CHAT, ask('capital city of France'), {})).outcome).toBe('miss')
  })

  it('treats a failing embedder as a miss and says so', async () => {
    const logs: string[] = []
    const cache = createResponseCache(settings, {
      embed: () => Promise.reject(new Error('embedding upstream down')),
      log: (_level, message) => logs.push(message),
    })
    const lookup = await cache.lookup(CHAT, ask('What is the capital of France?'), {})
    expect(lookup.outcome).toBe('miss')
    await cache.store(lookup, answer)
    expect((await cache.lookup(CHAT, ask('What is the capital of France?'), {})).outcome).toBe('hit')
    expect(cache.stats().embedErrors).toBe(1)
    expect(logs.join('\n')).toMatch(/embedding upstream down/)
  })

  it('stays off with a warning when no embedding function is wired', () => {
    const logs: string[] = []
    const cache = createResponseCache(settings, { log: (_level, message) => logs.push(message) })
    expect(cache.stats().semanticEntries).toBe(0)
    expect(logs.join('\n')).toMatch(/no embedding function/)
  })
})

describe("the semantic cache's embedding calls under auth.keys", () => {
  const auth = new Auth(parseConfig({ auth: { keys: [{ key: 'sk-user', name: 'user', models: ['chat'] }] } }))

  it('authenticate with the process-internal token on /v1/embeddings, for any model', () => {
    const principal = auth.authenticate('/v1/embeddings', internalAuthorization(), undefined)
    expect(principal?.name).toBe('velo-semantic-cache')
    expect(principal?.scope).toBe('user')
    expect(() => auth.checkModel(principal, 'any-embedder')).not.toThrow()
  })

  it('open no other path with that token, and no path with a made-up one', () => {
    for (const path of ['/v1/chat/completions', '/velo/status', '/velo/cache/clear', '/metrics']) {
      expect(() => auth.authenticate(path, internalAuthorization(), undefined)).toThrow(/invalid API key/)
    }
    expect(() => auth.authenticate('/v1/embeddings', 'Bearer velo-semantic-cache', undefined)).toThrow(
      /invalid API key/,
    )
  })
})
