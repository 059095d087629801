/**
 * Semantic-cache lookup latency: `tsx bench/semantic.ts RESULT.json [--sizes 10000,100000] [--dim 384]
 * [--queries 2000]`. Fills velo's SemanticIndex (src/proxy/cache) with synthetic embeddings and times
 * `search` alone (the embedding call a real lookup also makes is excluded, as the issue asks).
 *
 * The vectors are clustered (a few hundred centres plus noise) like the embeddings of real prompts,
 * all in one namespace (the worst case: one model, one system prompt); queries are perturbed copies
 * of stored vectors, the near-duplicates a semantic hit is for. It runs in its own process so the
 * 100k-entry graph does not sit in the harness's heap.
 */
import { writeFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { Samples, type Summary } from './lib/stats.js'

export type SemanticSizeResult =
  | {
      entries: number
      /** Time to add the entries since the previous size (the index grows from one size to the next). */
      buildMs: number
      /** Mean time of one `add` over those entries (ms). */
      insertMs: number
      lookup: Summary
      /** Share of queries whose nearest match is the vector they were perturbed from. */
      recall: number
    }
  | { entries: number; skipped: string }

export type SemanticResult =
  | { status: 'measured'; dim: number; sizes: SemanticSizeResult[] }
  | { status: 'pending'; reason: string }

interface IndexLike {
  add(namespace: string, vector: readonly number[], key: string): void
  search(namespace: string, vector: readonly number[]): { key: string; similarity: number } | undefined
}

type IndexFactory = (maxEntries: number) => IndexLike

async function loadIndex(): Promise<IndexFactory | string> {
  try {
    const cache = (await import('../src/proxy/cache/index.js')) as Record<string, unknown>
    const Ctor = cache['SemanticIndex']
    if (typeof Ctor !== 'function') return 'src/proxy/cache does not export SemanticIndex'
    const Index = Ctor as new (options: { maxEntries: number; ttlMs: number }) => IndexLike
    return (maxEntries) => new Index({ maxEntries, ttlMs: 3_600_000 })
  } catch (error) {
    return `src/proxy/cache could not be loaded: ${error instanceof Error ? error.message : String(error)}`
  }
}

/** A seeded generator (mulberry32) so every run fills the index with the same vectors. */
function seeded(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function gaussian(random: () => number): number {
  const u = Math.max(random(), Number.EPSILON)
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random())
}

function around(centre: readonly number[], spread: number, random: () => number): number[] {
  return centre.map((x) => x + spread * gaussian(random))
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      sizes: { type: 'string', default: '10000,100000' },
      dim: { type: 'string', default: '384' },
      queries: { type: 'string', default: '2000' },
      'budget-ms': { type: 'string', default: 'Infinity' },
    },
  })
  const out = positionals[0]
  if (!out) throw new Error('usage: tsx bench/semantic.ts RESULT.json [--sizes 10000,100000]')
  const factory = await loadIndex()
  if (typeof factory === 'string') {
    await writeFile(out, JSON.stringify({ status: 'pending', reason: factory } satisfies SemanticResult))
    return
  }
  const sizes = values.sizes
    .split(',')
    .map(Number)
    .sort((a, b) => a - b)
  const dim = Number(values.dim)
  const queries = Number(values.queries)
  const budgetMs = Number(values['budget-ms'])
  const begun = performance.now()
  const random = seeded(42)
  const centres = Array.from({ length: 500 }, () => Array.from({ length: dim }, () => gaussian(random)))
  const index = factory(Math.max(...sizes) + 1)
  const stored: number[][] = []
  const results: SemanticSizeResult[] = []
  const namespace = 'bench-model|no-system|no-tools'
  let insertMs = 0
  for (const size of sizes) {
    // Inserts get slower as the graph deepens; 1.3x the last rate is a fair guess for the next size.
    const estimateMs = (size - stored.length) * insertMs * 1.3
    const leftMs = budgetMs - (performance.now() - begun)
    if (insertMs > 0 && estimateMs > leftMs) {
      results.push({
        entries: size,
        skipped: `building it would take about ${Math.round(estimateMs / 1000)} s (${insertMs.toFixed(2)} ms per insert at ${stored.length} entries), past the ${Math.round(budgetMs / 1000)} s budget; run with --full`,
      })
      continue
    }
    const before = stored.length
    const started = performance.now()
    while (stored.length < size) {
      const centre = centres[stored.length % centres.length] as number[]
      const vector = around(centre, 0.35, random)
      index.add(namespace, vector, `key-${stored.length}`)
      stored.push(vector)
    }
    const buildMs = performance.now() - started
    insertMs = buildMs / Math.max(1, stored.length - before)
    const lookup = new Samples(queries)
    let found = 0
    for (let i = 0; i < queries; i++) {
      const source = Math.floor(random() * stored.length)
      const query = around(stored[source] as number[], 0.02, random)
      const t0 = process.hrtime.bigint()
      const match = index.search(namespace, query)
      lookup.push(Number(process.hrtime.bigint() - t0) / 1e6)
      if (match?.key === `key-${source}`) found++
    }
    results.push({ entries: size, buildMs, insertMs, lookup: lookup.summary(), recall: found / queries })
  }
  await writeFile(out, JSON.stringify({ status: 'measured', dim, sizes: results } satisfies SemanticResult))
}

await main()
