import { afterEach, describe, expect, it, vi } from 'vitest'
import { VeloError } from '../../src/core/errors.js'
import type { AdmissionLease, AdmissionRequest } from '../../src/proxy/pipeline-types.js'
import { FairQueue } from '../../src/proxy/scheduler/fair-queue.js'
import { createScheduler, QueueRejection, resolvePriority } from '../../src/proxy/scheduler/scheduler.js'

function request(client: string, overrides: Partial<AdmissionRequest> = {}): AdmissionRequest {
  return {
    model: 'm',
    priority: 0,
    client,
    promptChars: 10,
    signal: new AbortController().signal,
    ...overrides,
  }
}

/** Grant order under capacity 1: release each lease as soon as it is granted, in grant order. */
async function drain(pending: { label: string; promise: Promise<AdmissionLease> }[]): Promise<string[]> {
  const order: string[] = []
  const granted: { label: string; lease: AdmissionLease }[] = []
  for (const item of pending) {
    void item.promise.then(
      (lease) => granted.push({ label: item.label, lease }),
      () => undefined,
    )
  }
  for (let i = 0; i < pending.length; i++) {
    // A release grants the next waiter synchronously; its promise callbacks run on the next turn.
    await new Promise((resolve) => setImmediate(resolve))
    const next = granted.shift()
    if (!next) break
    order.push(next.label)
    next.lease.release()
  }
  return order
}

describe('FairQueue (start-time fair queueing)', () => {
  it('interleaves a late client between the requests of a client that queued a burst', () => {
    const queue = new FairQueue<string>()
    for (let i = 0; i < 20; i++) queue.push(`a${i}`, 'a', 0)
    queue.shift()
    queue.shift()
    for (let i = 0; i < 3; i++) queue.push(`b${i}`, 'b', 0)
    const order: string[] = []
    while (queue.size > 0) order.push(queue.shift()?.value ?? '')
    // b's three requests are served within its fair half of the next six turns.
    expect(order.slice(0, 6).filter((v) => v.startsWith('b'))).toHaveLength(3)
    expect(order.filter((v) => v.startsWith('a'))).toHaveLength(18)
  })

  it('serves higher priority first, then fairly within a priority', () => {
    const queue = new FairQueue<string>()
    queue.push('low-a', 'a', 0)
    queue.push('high-b', 'b', 5)
    queue.push('low-c', 'c', 0)
    queue.push('high-a', 'a', 5)
    expect([1, 2, 3, 4].map(() => queue.shift()?.value)).toEqual(['high-b', 'high-a', 'low-a', 'low-c'])
  })

  it('gives a weight-2 client twice the turns of a weight-1 client', () => {
    const queue = new FairQueue<string>({ weightOf: (client) => (client === 'gold' ? 2 : 1) })
    for (let i = 0; i < 30; i++) {
      queue.push('gold', 'gold', 0)
      queue.push('std', 'std', 0)
    }
    const first = [...Array(15)].map(() => queue.shift()?.value)
    expect(first.filter((v) => v === 'gold')).toHaveLength(10)
  })

  it('gives back the share of a removed request', () => {
    const queue = new FairQueue<string>()
    const entry = queue.push('a0', 'a', 0)
    queue.remove(entry)
    queue.push('b0', 'b', 0)
    queue.push('a1', 'a', 0)
    expect(queue.shift()?.value).toBe('b0')
    expect(queue.queuedFor('a')).toBe(1)
  })
})

describe('VeloScheduler admission and fairness', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  it('admits up to the capacity at once and queues the rest', async () => {
    const scheduler = createScheduler()
    scheduler.setCapacity('m', 2)
    const a = await scheduler.acquire(request('x'))
    const b = await scheduler.acquire(request('x'))
    let third: AdmissionLease | undefined
    const pending = scheduler.acquire(request('x')).then((lease) => {
      third = lease
      return lease
    })
    await Promise.resolve()
    expect(third).toBeUndefined()
    expect(scheduler.snapshot('m')).toEqual({ queueDepth: 1, running: 2, capacity: 2, paused: false })
    a.release()
    a.release() // releasing twice frees one place only
    await pending
    expect(scheduler.snapshot('m')).toMatchObject({ queueDepth: 0, running: 2 })
    b.release()
    third?.release()
    expect(scheduler.snapshot('m').running).toBe(0)
  })

  it('does not let a flood from one client delay another beyond its fair share', async () => {
    const scheduler = createScheduler({ maxQueue: 1000 })
    scheduler.setCapacity('m', 1)
    const pending: { label: string; promise: Promise<AdmissionLease> }[] = []
    for (let i = 0; i < 100; i++)
      pending.push({ label: 'flood', promise: scheduler.acquire(request('flood')) })
    for (let i = 0; i < 5; i++) pending.push({ label: 'other', promise: scheduler.acquire(request('other')) })
    const order = await drain(pending)
    expect(order).toHaveLength(105)
    // With two clients, each gets every other turn: the 5 late requests all run within the first
    // 12 turns (the flood's first request was already running when they arrived), not after 100.
    const positions = order.flatMap((label, index) => (label === 'other' ? [index] : []))
    expect(positions).toHaveLength(5)
    expect(Math.max(...positions)).toBeLessThanOrEqual(11)
  })

  it('without fairness (one client for all) the late requests would wait for the whole flood', async () => {
    // The control for the test above: same traffic, but every request under one client name.
    const scheduler = createScheduler({ maxQueue: 1000 })
    scheduler.setCapacity('m', 1)
    const pending: { label: string; promise: Promise<AdmissionLease> }[] = []
    for (let i = 0; i < 100; i++)
      pending.push({ label: 'flood', promise: scheduler.acquire(request('same')) })
    for (let i = 0; i < 5; i++) pending.push({ label: 'other', promise: scheduler.acquire(request('same')) })
    const order = await drain(pending)
    const positions = order.flatMap((label, index) => (label === 'other' ? [index] : []))
    expect(Math.min(...positions)).toBe(100)
  })

  it('serves a higher x-velo-priority first', async () => {
    const scheduler = createScheduler()
    scheduler.setCapacity('m', 1)
    const pending = [
      { label: 'first', promise: scheduler.acquire(request('a')) },
      { label: 'low', promise: scheduler.acquire(request('a')) },
      { label: 'high', promise: scheduler.acquire(request('b', { priority: 10 })) },
    ]
    expect(await drain(pending)).toEqual(['first', 'high', 'low'])
  })

  it('answers 429 with Retry-After when the queue is full, and pushes out a flooding client for a light one', async () => {
    const scheduler = createScheduler({ maxQueue: 3 })
    scheduler.setCapacity('m', 1)
    const running = await scheduler.acquire(request('flood'))
    const queued = [0, 1, 2].map(() => scheduler.acquire(request('flood')))
    const settled = queued.map((p) =>
      p.then(
        () => 'granted',
        (error: unknown) => error,
      ),
    )
    // The same client gets 429 for a fourth.
    const rejected = await scheduler.acquire(request('flood')).catch((error: unknown) => error)
    expect(rejected).toBeInstanceOf(VeloError)
    expect(rejected).toMatchObject({ code: 'VELO_QUEUE_FULL', status: 429 })
    expect((rejected as VeloError).retryAfterSeconds).toBeGreaterThanOrEqual(1)
    // Another client takes the place of the flood's newest request.
    const light = scheduler.acquire(request('light'))
    expect(await settled[2]).toMatchObject({ code: 'VELO_QUEUE_FULL', status: 429 })
    expect(scheduler.snapshot('m').queueDepth).toBe(3)
    running.release()
    const [first, second] = queued
    ;(await first)?.release()
    ;(await light).release()
    ;(await second)?.release()
  })

  it('answers 503 when more requests wait over all models than maxQueueTotal', async () => {
    const scheduler = createScheduler({ maxQueueTotal: 2 })
    for (const model of ['a', 'b', 'c']) scheduler.setCapacity(model, 1)
    const holds = await Promise.all(
      ['a', 'b', 'c'].map((model) => scheduler.acquire(request('x', { model }))),
    )
    const waiting = [
      scheduler.acquire(request('x', { model: 'a' })),
      scheduler.acquire(request('x', { model: 'b' })),
    ]
    const error = await scheduler.acquire(request('x', { model: 'c' })).catch((e: unknown) => e)
    expect(error).toMatchObject({ code: 'VELO_OVERLOADED', status: 503 })
    expect((error as VeloError).retryAfterSeconds).toBeGreaterThanOrEqual(1)
    for (const lease of holds) lease.release()
    for (const lease of await Promise.all(waiting)) lease.release()
  })

  it('times a request out of the queue with 429 and reports queue time on granted leases', async () => {
    vi.useFakeTimers()
    const scheduler = createScheduler({ queueTimeout: 5000 })
    scheduler.setCapacity('m', 1)
    const running = await scheduler.acquire(request('a'))
    expect(running.queueMs).toBe(0)
    const second = scheduler.acquire(request('b'))
    await vi.advanceTimersByTimeAsync(1500)
    running.release()
    const lease = await second
    expect(lease.queueMs).toBe(1500)
    const third = scheduler.acquire(request('c')).catch((error: unknown) => error)
    await vi.advanceTimersByTimeAsync(5000)
    const error = await third
    expect(error).toMatchObject({ code: 'VELO_QUEUE_TIMEOUT', status: 429 })
    expect((error as VeloError).retryAfterSeconds).toBeGreaterThanOrEqual(1)
    // The time it waited before it was given up, for x-velo-queue-ms on the 429.
    expect(error).toBeInstanceOf(QueueRejection)
    expect((error as QueueRejection).queueMs).toBe(5000)
    expect(scheduler.snapshot('m')).toMatchObject({ queueDepth: 0, running: 1 })
    lease.release()
  })

  it('says how long a pushed-out request waited, and 0 for one turned away on arrival', async () => {
    vi.useFakeTimers()
    const scheduler = createScheduler({ maxQueue: 2, queueTimeout: 60_000 })
    scheduler.setCapacity('m', 1)
    const running = await scheduler.acquire(request('flood'))
    const oldest = scheduler.acquire(request('flood'))
    const newest = scheduler.acquire(request('flood')).catch((error: unknown) => error)
    await vi.advanceTimersByTimeAsync(700)
    // A client with nothing queued pushes out the flood's newest request, which waited 700 ms.
    const fair = scheduler.acquire(request('other'))
    expect(await newest).toMatchObject({ code: 'VELO_QUEUE_FULL', queueMs: 700 })
    const turnedAway = await scheduler.acquire(request('flood')).catch((error: unknown) => error)
    expect(turnedAway).toMatchObject({ code: 'VELO_QUEUE_FULL', queueMs: 0 })
    running.release()
    ;(await oldest).release()
    ;(await fair).release()
  })

  it('applies new fair-share weights (a config reload) to requests queued after it', async () => {
    const order = async (weights: Record<string, number> | undefined): Promise<string[]> => {
      const scheduler = createScheduler({ maxQueue: 100 })
      if (weights) scheduler.setWeights(weights)
      scheduler.setCapacity('m', 1)
      const running = await scheduler.acquire(request('x'))
      const pending = [
        ...[1, 2, 3, 4].map((i) => ({ label: `a${i}`, promise: scheduler.acquire(request('a')) })),
        ...[1, 2, 3, 4].map((i) => ({ label: `b${i}`, promise: scheduler.acquire(request('b')) })),
      ]
      running.release()
      return drain(pending)
    }
    expect(await order(undefined)).toEqual(['a1', 'b1', 'a2', 'b2', 'a3', 'b3', 'a4', 'b4'])
    // Weight 3: a gets three turns for each of b's.
    expect(await order({ a: 3 })).toEqual(['a1', 'b1', 'a2', 'a3', 'a4', 'b2', 'b3', 'b4'])
  })

  it('takes a request whose client left out of the queue, rejecting with the abort reason', async () => {
    const scheduler = createScheduler()
    scheduler.setCapacity('m', 1)
    const running = await scheduler.acquire(request('a'))
    const controller = new AbortController()
    const pending = scheduler.acquire(request('b', { signal: controller.signal }))
    expect(scheduler.snapshot('m').queueDepth).toBe(1)
    controller.abort(new Error('client closed'))
    await expect(pending).rejects.toThrow('client closed')
    expect(scheduler.snapshot('m').queueDepth).toBe(0)
    running.release()
    expect(scheduler.snapshot('m').running).toBe(0)
  })

  it('holds a paused model and admits again on resume', async () => {
    const scheduler = createScheduler()
    scheduler.pause('m')
    let granted = false
    const pending = scheduler.acquire(request('a')).then((lease) => {
      granted = true
      return lease
    })
    await Promise.resolve()
    expect(granted).toBe(false)
    expect(scheduler.snapshot('m').paused).toBe(true)
    scheduler.resume('m')
    ;(await pending).release()
    expect(granted).toBe(true)
  })

  it('reports admissions, releases and rejections to the metrics hook', async () => {
    const events: string[] = []
    const scheduler = createScheduler({ maxQueue: 1 }, { onEvent: (event) => events.push(event.type) })
    scheduler.setCapacity('m', 1)
    const lease = await scheduler.acquire(request('a'))
    const queued = scheduler.acquire(request('a'))
    await scheduler.acquire(request('a')).catch(() => undefined)
    lease.release()
    ;(await queued).release()
    expect(events).toEqual(['admitted', 'rejected', 'released', 'admitted', 'released'])
    expect(scheduler.stats()).toMatchObject({
      admitted: 2,
      rejected: { queueFull: 1 },
      queued: 0,
      running: 0,
    })
  })
})

describe('resolvePriority', () => {
  it('takes the header, else the client default, else the global default, clamped', () => {
    const settings = { priorities: { ci: -5 }, defaultPriority: 1 }
    expect(resolvePriority('7', 'ci', settings)).toBe(7)
    expect(resolvePriority(undefined, 'ci', settings)).toBe(-5)
    expect(resolvePriority('high', 'someone', settings)).toBe(1)
    expect(resolvePriority(['1000'], 'x', settings)).toBe(100)
  })
})
