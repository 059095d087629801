import { createHash } from 'node:crypto'

/**
 * Prefix affinity: requests that share a long prompt prefix should run on the same llama-server slot
 * (`id_slot`), because each slot keeps the KV cache of the last prompt it processed and reuses the
 * longest common prefix of the next one. Without pinning, llama-server picks a slot by its own
 * similarity check only among idle slots, and a conversation's turns scatter over slots.
 *
 * A request yields up to two keys, most specific first:
 *  - the conversation: tools + system prompt + first user turn (every later turn of the same
 *    conversation repeats these, so they all map to one slot);
 *  - the system prompt: tools + system prompt (different conversations with one long system prompt
 *    share at least that much).
 * For raw prompts (`/v1/completions`, `/api/generate`) the keys are the first 2048 and 512 characters.
 */

const hash = (text: string): string => createHash('sha256').update(text).digest('base64url').slice(0, 22)

function textOf(content: unknown): string {
  if (typeof content === 'string') return content
  if (Array.isArray(content)) {
    return content
      .map((part) => {
        if (typeof part === 'string') return part
        if (part && typeof part === 'object' && 'text' in part && typeof part.text === 'string')
          return part.text
        return ''
      })
      .join('')
  }
  return ''
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** The prefix keys of a parsed request body (OpenAI or Ollama), most specific first; [] if none. */
export function prefixKeys(body: unknown): string[] {
  if (!isRecord(body)) return []
  const model = typeof body['model'] === 'string' ? body['model'] : ''
  const tools = body['tools'] === undefined ? '' : JSON.stringify(body['tools'])
  const messages = body['messages']
  if (Array.isArray(messages)) {
    let system = typeof body['system'] === 'string' ? body['system'] : ''
    let firstTurn: string | undefined
    for (const message of messages) {
      if (!isRecord(message)) continue
      const role = message['role']
      if ((role === 'system' || role === 'developer') && firstTurn === undefined) {
        system += `\u0000${textOf(message['content'])}`
      } else if (role === 'user' && firstTurn === undefined) {
        firstTurn = textOf(message['content'])
        break
      }
    }
    const keys: string[] = []
    const base = `${model}\u0001${tools}\u0001${system}`
    if (firstTurn !== undefined) keys.push(hash(`conv\u0001${base}\u0001${firstTurn}`))
    if (system.length > 0 || tools.length > 0) keys.push(hash(`sys\u0001${base}`))
    return keys
  }
  const prompt = body['prompt']
  if (typeof prompt === 'string' && prompt.length > 0) {
    const system = typeof body['system'] === 'string' ? body['system'] : ''
    const head = `${model}\u0001${system}\u0001`
    const keys = [hash(`p2048\u0001${head}${prompt.slice(0, 2048)}`)]
    if (prompt.length > 512) keys.push(hash(`p512\u0001${head}${prompt.slice(0, 512)}`))
    return keys
  }
  return []
}

/** A stable integer in [0, buckets) from a key. */
function bucket(key: string, buckets: number): number {
  let h = 2166136261
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i)
    h = Math.imul(h, 16777619)
  }
  // FNV-1a alone mixes the last characters poorly; murmur3's finalizer spreads every bit.
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return (h >>> 0) % buckets
}

/**
 * Picks one of an upstream's slots for each running request. The scheduler only asks when a slot is
 * free (admission never exceeds the slot count), so pinning never makes a request wait for one busy
 * slot. Each prefix key (a hash of the prefix) has a home slot: the slot that last ran it. A request
 * runs on the home of its most specific key when that slot is free; otherwise, and for a prefix seen
 * for the first time, on the free slot used least recently, which becomes the prefix's new home.
 */
export class SlotPicker {
  private busy: boolean[]
  private lastUsed: number[]
  private readonly home = new Map<string, number>()
  private clock = 0

  constructor(
    slots: number,
    /** How many prefixes to remember (oldest forgotten first). */
    private readonly memory = 4096,
  ) {
    this.busy = Array.from({ length: Math.max(1, slots) }, () => false)
    this.lastUsed = this.busy.map(() => 0)
  }

  get slots(): number {
    return this.busy.length
  }

  /** Change the slot count (capacity changed); busy slots beyond the new count stay busy until released. */
  resize(slots: number): void {
    const count = Math.max(1, slots)
    while (this.busy.length < count) {
      this.busy.push(false)
      this.lastUsed.push(0)
    }
    if (this.busy.length > count) {
      this.busy = this.busy.slice(0, count)
      this.lastUsed = this.lastUsed.slice(0, count)
      for (const [key, slot] of this.home) if (slot >= count) this.home.delete(key)
    }
  }

  /** Take a free slot for a request with these prefix keys; undefined when every slot is busy. */
  pick(keys: readonly string[] = []): number | undefined {
    let chosen: number | undefined
    for (const key of keys) {
      const slot = this.home.get(key)
      if (slot !== undefined && !this.busy[slot]) {
        chosen = slot
        break
      }
    }
    // A prefix seen for the first time, or whose slot is busy: the free slot used least recently,
    // whose cached prompt is the least likely to be wanted again.
    if (chosen === undefined) {
      for (let slot = 0; slot < this.busy.length; slot++) {
        if (this.busy[slot]) continue
        if (chosen === undefined || (this.lastUsed[slot] ?? 0) < (this.lastUsed[chosen] ?? 0)) chosen = slot
      }
    }
    if (chosen === undefined) return undefined
    this.busy[chosen] = true
    this.lastUsed[chosen] = ++this.clock
    for (const key of keys) {
      this.home.delete(key)
      this.home.set(key, chosen)
    }
    while (this.home.size > this.memory) {
      const oldest = this.home.keys().next().value
      if (oldest === undefined) break
      this.home.delete(oldest)
    }
    return chosen
  }

  release(slot: number): void {
    if (slot >= 0 && slot < this.busy.length) this.busy[slot] = false
  }
}

/**
 * Rendezvous (highest random weight) hashing: the same key picks the same upstream among candidates,
 * and removing one candidate moves only the keys it held. For prefix affinity across upstreams.
 */
export function pickByPrefix<T extends string>(key: string, candidates: readonly T[]): T | undefined {
  let best: T | undefined
  let bestScore = -1
  for (const candidate of candidates) {
    const score = bucket(`${candidate}\u0000${key}`, 0x7fffffff)
    if (score > bestScore) {
      best = candidate
      bestScore = score
    }
  }
  return best
}
