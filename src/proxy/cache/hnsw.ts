/**
 * A small HNSW index (Malkov and Yashunin, "Efficient and robust approximate nearest neighbor search
 * using Hierarchical Navigable Small World graphs", 2016) over cosine similarity.
 *
 * Why our own: the npm options either compile C++ at install (hnswlib-node has no prebuilt binaries,
 * so every user of velo would need a compiler toolchain) or ship a native or WASM engine far larger
 * than this cache needs. The semantic cache keeps one index per namespace with at most
 * `cache.semantic.maxEntries` vectors in all, where a plain TypeScript graph answers a query in a few
 * milliseconds (5,000 vectors of 768 dimensions: ~3 ms, against ~30 ms for a scan, on 2 cores) and
 * installs everywhere Node runs.
 *
 * Vectors are normalized on insert, so similarity is a dot product. Removal leaves a tombstone: the
 * node still routes searches but is never returned; the owner rebuilds when tombstones pile up.
 */

export interface HnswOptions {
  /** Links per node above layer 0 (layer 0 keeps twice as many). */
  m?: number
  /** Candidate list size while inserting. */
  efConstruction?: number
  /** Candidate list size while searching (at least k). */
  efSearch?: number
  /** Random source for level assignment (seeded in tests). */
  random?: () => number
}

export interface HnswResult {
  id: number
  similarity: number
}

/** A binary heap ordered by `less`. */
class Heap<T> {
  private readonly items: T[] = []
  constructor(private readonly less: (a: T, b: T) => boolean) {}
  get size(): number {
    return this.items.length
  }
  peek(): T | undefined {
    return this.items[0]
  }
  push(item: T): void {
    const items = this.items
    items.push(item)
    let i = items.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      const p = items[parent] as T
      if (!this.less(item, p)) break
      items[i] = p
      i = parent
    }
    items[i] = item
  }
  pop(): T | undefined {
    const items = this.items
    const top = items[0]
    const last = items.pop()
    if (items.length === 0 || last === undefined) return top
    let i = 0
    for (;;) {
      const left = 2 * i + 1
      const right = left + 1
      let best = i
      let bestItem = last
      const l = items[left]
      if (l !== undefined && this.less(l, bestItem)) {
        best = left
        bestItem = l
      }
      const r = items[right]
      if (r !== undefined && this.less(r, bestItem)) {
        best = right
        bestItem = r
      }
      if (best === i) break
      items[i] = bestItem
      i = best
    }
    items[i] = last
    return top
  }
  toArray(): T[] {
    return [...this.items]
  }
}

interface Candidate {
  node: number
  distance: number
}

export class Hnsw {
  readonly dim: number
  private readonly m: number
  private readonly m0: number
  private readonly efConstruction: number
  private readonly efSearch: number
  private readonly levelFactor: number
  private readonly random: () => number
  private readonly vectors: Float32Array[] = []
  /** links[node][level]: neighbour node numbers. */
  private readonly links: number[][][] = []
  private readonly deleted = new Set<number>()
  /** visitMarks[node] === visitEpoch: seen in the current layer search (a Set per search cost ~20%). */
  private visitMarks = new Uint32Array(1024)
  private visitEpoch = 0
  private entry = -1
  private topLevel = -1
  /** Distance evaluations of the last search (to check that it is not a scan). */
  lastSearchDistanceCount = 0

  constructor(dim: number, options: HnswOptions = {}) {
    this.dim = dim
    this.m = options.m ?? 16
    this.m0 = this.m * 2
    this.efConstruction = options.efConstruction ?? 100
    this.efSearch = options.efSearch ?? 64
    this.levelFactor = 1 / Math.log(this.m)
    this.random = options.random ?? Math.random
  }

  /** Nodes inserted, tombstones included. */
  get size(): number {
    return this.vectors.length
  }

  get liveCount(): number {
    return this.vectors.length - this.deleted.size
  }

  get deletedCount(): number {
    return this.deleted.size
  }

  /** Insert a vector; returns its node number. */
  add(vector: ArrayLike<number>): number {
    const q = normalize(vector, this.dim)
    const node = this.vectors.length
    const level = Math.floor(-Math.log(Math.max(this.random(), 1e-12)) * this.levelFactor)
    this.vectors.push(q)
    this.links.push(Array.from({ length: level + 1 }, () => []))
    if (this.entry < 0) {
      this.entry = node
      this.topLevel = level
      return node
    }
    let entry: Candidate = { node: this.entry, distance: this.distance(q, this.entry) }
    for (let layer = this.topLevel; layer > level; layer--) entry = this.greedy(q, entry, layer)
    let entries = [entry]
    for (let layer = Math.min(level, this.topLevel); layer >= 0; layer--) {
      const found = this.searchLayer(q, entries, this.efConstruction, layer)
      const max = layer === 0 ? this.m0 : this.m
      const neighbours = this.selectNeighbours(found, this.m)
      const own = this.links[node]?.[layer]
      if (own) for (const n of neighbours) own.push(n.node)
      for (const n of neighbours) {
        const theirs = this.links[n.node]?.[layer]
        if (!theirs) continue
        theirs.push(node)
        if (theirs.length > max) this.shrink(n.node, layer, max)
      }
      entries = found
    }
    if (level > this.topLevel) {
      this.topLevel = level
      this.entry = node
    }
    return node
  }

  /** Leave a tombstone: the node keeps routing searches but is never returned. */
  remove(node: number): void {
    if (node >= 0 && node < this.vectors.length) this.deleted.add(node)
  }

  isDeleted(node: number): boolean {
    return this.deleted.has(node)
  }

  vector(node: number): Float32Array | undefined {
    return this.vectors[node]
  }

  /** The k nearest live nodes by cosine similarity, best first. */
  search(query: ArrayLike<number>, k = 1, ef = this.efSearch): HnswResult[] {
    this.lastSearchDistanceCount = 0
    if (this.entry < 0 || this.liveCount === 0) return []
    const q = normalize(query, this.dim)
    let entry: Candidate = { node: this.entry, distance: this.distance(q, this.entry) }
    for (let layer = this.topLevel; layer > 0; layer--) entry = this.greedy(q, entry, layer)
    const found = this.searchLayer(q, [entry], Math.max(ef, k), 0)
    // Float32 rounding puts a vector's similarity to itself a hair above 1: clamped, or an exact
    // repeat would fall outside the metrics histogram's le="1" bucket.
    return found
      .filter((c) => !this.deleted.has(c.node))
      .sort((a, b) => a.distance - b.distance)
      .slice(0, k)
      .map((c) => ({ id: c.node, similarity: Math.min(1, Math.max(-1, 1 - c.distance)) }))
  }

  private distance(q: Float32Array, node: number): number {
    this.lastSearchDistanceCount++
    const v = this.vectors[node]
    if (!v) return 2
    return 1 - dot(q, v)
  }

  private greedy(q: Float32Array, start: Candidate, layer: number): Candidate {
    let best = start
    let improved = true
    while (improved) {
      improved = false
      for (const n of this.links[best.node]?.[layer] ?? []) {
        const d = this.distance(q, n)
        if (d < best.distance) {
          best = { node: n, distance: d }
          improved = true
        }
      }
    }
    return best
  }

  /** Best-first search of one layer; returns up to ef candidates (tombstones included, they route). */
  private searchLayer(q: Float32Array, entries: Candidate[], ef: number, layer: number): Candidate[] {
    const visited = this.newVisit()
    const epoch = this.visitEpoch
    const candidates = new Heap<Candidate>((a, b) => a.distance < b.distance)
    const results = new Heap<Candidate>((a, b) => a.distance > b.distance)
    for (const e of entries) {
      if (visited[e.node] === epoch) continue
      visited[e.node] = epoch
      candidates.push(e)
      results.push(e)
      if (results.size > ef) results.pop()
    }
    while (candidates.size > 0) {
      const current = candidates.pop()
      const worst = results.peek()
      if (!current || (worst && current.distance > worst.distance && results.size >= ef)) break
      for (const n of this.links[current.node]?.[layer] ?? []) {
        if (visited[n] === epoch) continue
        visited[n] = epoch
        const d = this.distance(q, n)
        const farthest = results.peek()
        if (results.size < ef || (farthest && d < farthest.distance)) {
          const candidate = { node: n, distance: d }
          candidates.push(candidate)
          results.push(candidate)
          if (results.size > ef) results.pop()
        }
      }
    }
    return results.toArray()
  }

  /** Marks for one layer search, sized to the graph; a new epoch clears them without a fill. */
  private newVisit(): Uint32Array {
    if (this.visitMarks.length < this.vectors.length) {
      this.visitMarks = new Uint32Array(Math.max(this.vectors.length, this.visitMarks.length * 2))
      this.visitEpoch = 0
    }
    this.visitEpoch++
    if (this.visitEpoch === 0xffffffff) {
      this.visitMarks.fill(0)
      this.visitEpoch = 1
    }
    return this.visitMarks
  }

  /**
   * The paper's neighbour-selection heuristic: keep a candidate only if it is closer to the new node
   * than to every neighbour kept so far, which keeps links that lead to other clusters; then fill up
   * with the closest of the rest.
   */
  private selectNeighbours(found: Candidate[], count: number): Candidate[] {
    const sorted = [...found].sort((a, b) => a.distance - b.distance)
    const kept: Candidate[] = []
    const pruned: Candidate[] = []
    for (const candidate of sorted) {
      if (kept.length >= count) break
      const cv = this.vectors[candidate.node]
      let good = true
      for (const k of kept) {
        const kv = this.vectors[k.node]
        if (cv && kv && 1 - dot(cv, kv) < candidate.distance) {
          good = false
          break
        }
      }
      if (good) kept.push(candidate)
      else pruned.push(candidate)
    }
    for (const candidate of pruned) {
      if (kept.length >= count) break
      kept.push(candidate)
    }
    return kept
  }

  private shrink(node: number, layer: number, max: number): void {
    const links = this.links[node]?.[layer]
    const v = this.vectors[node]
    if (!links || !v) return
    const candidates = links.map((n) => {
      const nv = this.vectors[n]
      return { node: n, distance: nv ? 1 - dot(v, nv) : 2 }
    })
    const kept = this.selectNeighbours(candidates, max)
    links.length = 0
    for (const k of kept) links.push(k.node)
  }
}

/** Four running sums: V8 does not vectorise, and independent sums let the CPU overlap the work (~2x). */
function dot(a: Float32Array, b: Float32Array): number {
  const n = a.length
  const end = n - (n % 4)
  let s0 = 0
  let s1 = 0
  let s2 = 0
  let s3 = 0
  let i = 0
  for (; i < end; i += 4) {
    s0 += (a[i] as number) * (b[i] as number)
    s1 += (a[i + 1] as number) * (b[i + 1] as number)
    s2 += (a[i + 2] as number) * (b[i + 2] as number)
    s3 += (a[i + 3] as number) * (b[i + 3] as number)
  }
  for (; i < n; i++) s0 += (a[i] as number) * (b[i] as number)
  return s0 + s1 + s2 + s3
}

function normalize(vector: ArrayLike<number>, dim: number): Float32Array {
  if (vector.length !== dim)
    throw new RangeError(`expected a vector of ${dim} dimensions, got ${vector.length}`)
  const out = new Float32Array(dim)
  let norm = 0
  for (let i = 0; i < dim; i++) {
    const x = vector[i] ?? 0
    out[i] = x
    norm += x * x
  }
  norm = Math.sqrt(norm)
  if (norm > 0) for (let i = 0; i < dim; i++) out[i] = (out[i] as number) / norm
  return out
}
