/**
 * One model's wait queue: strict priority between levels, start-time fair queueing (SFQ, Goyal,
 * Vin and Cheng 1996) between clients within a level.
 *
 * Each entry gets a virtual start tag `max(V, lastFinish[client])` and a finish tag
 * `start + cost / weight` when it arrives; the queue hands out the highest priority first, then the
 * smallest start tag, then arrival order. V is the start tag of the entry handed out last, so a client
 * that was idle gets no credit for it, and a client that queued a burst gets tags far in the future:
 * another client's request lands between the burst's requests instead of behind all of them.
 *
 * The tags are fixed at arrival, so the order is a sorted array with binary-search insertion. Queues
 * are bounded (scheduler.maxQueue, a few hundred at most), where that beats a heap that must also
 * support removal of timed-out and aborted entries.
 */
export interface FairQueueEntry<T> {
  readonly value: T
  readonly client: string
  readonly priority: number
  readonly seq: number
  readonly start: number
  readonly finish: number
}

export interface FairQueueOptions {
  /** Share of a client relative to others (default 1): a weight-2 client gets twice the turns. */
  weightOf?: (client: string) => number
}

function before<T>(a: FairQueueEntry<T>, b: FairQueueEntry<T>): boolean {
  if (a.priority !== b.priority) return a.priority > b.priority
  if (a.start !== b.start) return a.start < b.start
  return a.seq < b.seq
}

export class FairQueue<T> {
  private readonly entries: FairQueueEntry<T>[] = []
  private readonly lastFinish = new Map<string, number>()
  private readonly queuedBy = new Map<string, number>()
  private virtualTime = 0
  private seq = 0
  private readonly weightOf: (client: string) => number

  constructor(options: FairQueueOptions = {}) {
    this.weightOf = options.weightOf ?? (() => 1)
  }

  get size(): number {
    return this.entries.length
  }

  /** Queue a value; `cost` is the request's share of service (1 per request by default). */
  push(value: T, client: string, priority: number, cost = 1): FairQueueEntry<T> {
    const weight = Math.max(this.weightOf(client), 1e-6)
    const start = Math.max(this.virtualTime, this.lastFinish.get(client) ?? 0)
    const finish = start + cost / weight
    this.lastFinish.set(client, finish)
    const entry: FairQueueEntry<T> = { value, client, priority, seq: this.seq++, start, finish }
    let low = 0
    let high = this.entries.length
    while (low < high) {
      const mid = (low + high) >>> 1
      const other = this.entries[mid]
      if (other && before(other, entry)) low = mid + 1
      else high = mid
    }
    this.entries.splice(low, 0, entry)
    this.queuedBy.set(client, (this.queuedBy.get(client) ?? 0) + 1)
    return entry
  }

  peek(): FairQueueEntry<T> | undefined {
    return this.entries[0]
  }

  /** The next entry to serve; advances virtual time to its start tag. */
  shift(): FairQueueEntry<T> | undefined {
    const entry = this.entries.shift()
    if (!entry) return undefined
    this.virtualTime = Math.max(this.virtualTime, entry.start)
    this.forget(entry)
    return entry
  }

  /** Take an entry out without serving it (timed out, client left, pushed out). */
  remove(entry: FairQueueEntry<T>): boolean {
    const index = this.entries.indexOf(entry)
    if (index < 0) return false
    this.entries.splice(index, 1)
    this.forget(entry)
    // A removed request was never served: give its share back so the client is not penalised for it.
    const cost = entry.finish - entry.start
    const last = this.lastFinish.get(entry.client)
    if (last !== undefined && last === entry.finish) this.lastFinish.set(entry.client, last - cost)
    return true
  }

  queuedFor(client: string): number {
    return this.queuedBy.get(client) ?? 0
  }

  /** The client with the most queued entries, and how many (for push-out when the queue is full). */
  heaviestClient(): { client: string; count: number } | undefined {
    let best: { client: string; count: number } | undefined
    for (const [client, count] of this.queuedBy) {
      if (!best || count > best.count) best = { client, count }
    }
    return best
  }

  /** The entry of this client that would be served last. */
  lastOf(client: string): FairQueueEntry<T> | undefined {
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const entry = this.entries[i]
      if (entry?.client === client) return entry
    }
    return undefined
  }

  /** Arrival time order is not kept separately; the oldest is the lowest sequence number. */
  oldest(): FairQueueEntry<T> | undefined {
    let oldest: FairQueueEntry<T> | undefined
    for (const entry of this.entries) if (!oldest || entry.seq < oldest.seq) oldest = entry
    return oldest
  }

  values(): T[] {
    return this.entries.map((entry) => entry.value)
  }

  private forget(entry: FairQueueEntry<T>): void {
    const count = (this.queuedBy.get(entry.client) ?? 1) - 1
    if (count <= 0) {
      this.queuedBy.delete(entry.client)
      // Nothing queued and nothing owed: drop the client's tag so the map does not grow without bound.
      if ((this.lastFinish.get(entry.client) ?? 0) <= this.virtualTime) this.lastFinish.delete(entry.client)
    } else this.queuedBy.set(entry.client, count)
  }
}
