import { Hnsw } from './hnsw.js'

/**
 * The semantic cache's index: one HNSW graph per namespace (semanticParts in normalize.ts), so a
 * search can only ever find requests with the same model, system prompt, tools, response format and
 * earlier turns; a filtered search over one shared graph could not promise that. Each vector points at
 * an exact-cache key, so the response itself lives in the exact tiers (memory, Redis) once.
 *
 * Bounded by `maxEntries` over all namespaces (least recently used first) and by a TTL.
 */

export interface SemanticIndexOptions {
  maxEntries: number
  ttlMs: number
  now?: () => number
  /** HNSW parameters; defaults suit a few thousand vectors per namespace. */
  m?: number
  efSearch?: number
  random?: () => number
}

interface Entry {
  namespace: string
  node: number
  key: string
  expiresAt: number
}

interface Namespace {
  index: Hnsw
  /** node -> entry id */
  entries: Map<number, number>
  /** exact key -> entry id (one vector per cached response) */
  byKey: Map<string, number>
}

export interface SemanticMatch {
  key: string
  similarity: number
}

export class SemanticIndex {
  private readonly namespaces = new Map<string, Namespace>()
  /** entry id -> entry, in least-recently-used-first order. */
  private readonly entries = new Map<number, Entry>()
  private nextId = 0
  private readonly now: () => number

  constructor(private readonly options: SemanticIndexOptions) {
    this.now = options.now ?? (() => Date.now())
  }

  get size(): number {
    return this.entries.size
  }

  get namespaceCount(): number {
    return this.namespaces.size
  }

  /** The nearest live entry of this namespace, whatever its similarity (the caller applies the threshold). */
  search(namespace: string, vector: readonly number[]): SemanticMatch | undefined {
    const space = this.namespaces.get(namespace)
    if (!space || space.index.dim !== vector.length) return undefined
    const now = this.now()
    for (const result of space.index.search(vector, 4)) {
      const id = space.entries.get(result.id)
      const entry = id === undefined ? undefined : this.entries.get(id)
      if (id === undefined || !entry) continue
      if (entry.expiresAt <= now) {
        this.drop(id)
        continue
      }
      this.entries.delete(id)
      this.entries.set(id, entry)
      return { key: entry.key, similarity: result.similarity }
    }
    return undefined
  }

  add(namespace: string, vector: readonly number[], key: string): void {
    if (vector.length === 0 || this.options.maxEntries <= 0) return
    let space = this.namespaces.get(namespace)
    if (space && space.index.dim !== vector.length) {
      // The embedding model changed its dimensions: the old vectors are not comparable any more.
      for (const id of space.entries.values()) this.entries.delete(id)
      this.namespaces.delete(namespace)
      space = undefined
    }
    if (!space) {
      space = {
        index: new Hnsw(vector.length, {
          m: this.options.m,
          efSearch: this.options.efSearch,
          random: this.options.random,
        }),
        entries: new Map(),
        byKey: new Map(),
      }
      this.namespaces.set(namespace, space)
    }
    const previous = space.byKey.get(key)
    if (previous !== undefined) this.drop(previous)
    const node = space.index.add(vector)
    const id = this.nextId++
    space.entries.set(node, id)
    space.byKey.set(key, id)
    this.entries.set(id, { namespace, node, key, expiresAt: this.now() + this.options.ttlMs })
    while (this.entries.size > this.options.maxEntries) {
      const oldest = this.entries.keys().next().value
      if (oldest === undefined) break
      this.drop(oldest)
    }
  }

  /** Forget the entries that point at this exact key (its response was evicted). */
  forgetKey(key: string): void {
    for (const space of this.namespaces.values()) {
      const id = space.byKey.get(key)
      if (id !== undefined) this.drop(id)
    }
  }

  clear(): number {
    const count = this.entries.size
    this.entries.clear()
    this.namespaces.clear()
    return count
  }

  private drop(id: number): void {
    const entry = this.entries.get(id)
    if (!entry) return
    this.entries.delete(id)
    const space = this.namespaces.get(entry.namespace)
    if (!space) return
    space.index.remove(entry.node)
    space.entries.delete(entry.node)
    if (space.byKey.get(entry.key) === id) space.byKey.delete(entry.key)
    if (space.entries.size === 0) this.namespaces.delete(entry.namespace)
    else if (space.index.deletedCount > space.index.liveCount) this.rebuild(entry.namespace, space)
  }

  /** Tombstones outnumber live nodes: build the graph again from the live vectors. */
  private rebuild(namespace: string, space: Namespace): void {
    const index = new Hnsw(space.index.dim, {
      m: this.options.m,
      efSearch: this.options.efSearch,
      random: this.options.random,
    })
    const entries = new Map<number, number>()
    for (const [oldNode, id] of space.entries) {
      const vector = space.index.vector(oldNode)
      const entry = this.entries.get(id)
      if (!vector || !entry) continue
      const node = index.add(vector)
      entries.set(node, id)
      entry.node = node
    }
    this.namespaces.set(namespace, { index, entries, byKey: space.byKey })
  }
}
