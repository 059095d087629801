import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import {
  AffinityPolicy,
  type GroupView,
  type ModelPlacement,
} from '../../src/proxy/scheduler/model-switch.js'
import {
  createScheduler,
  type ModelSwitchEvent,
  type VeloScheduler,
} from '../../src/proxy/scheduler/scheduler.js'

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/**
 * A process manager like the server's: loads a model on first use (taking `loadMs`), keeps at most
 * `maxLoaded` loaded and evicts the least recently used. It fails the test if it ever has to evict a
 * model that still runs a request: the scheduler must never force that.
 */
class FakeManager {
  readonly loaded: string[] = []
  readonly running = new Map<string, number>()
  loads = 0
  private readonly loading = new Map<string, Promise<void>>()
  evictedWhileRunning = 0

  constructor(
    private readonly maxLoaded: number,
    private readonly loadMs: number,
  ) {}

  async ensure(model: string): Promise<void> {
    if (this.loaded.includes(model)) return
    const pending = this.loading.get(model)
    if (pending) return pending
    const load = (async () => {
      while (this.loaded.length >= this.maxLoaded) {
        const victim = this.loaded.shift()
        if (victim && (this.running.get(victim) ?? 0) > 0) this.evictedWhileRunning++
      }
      this.loads++
      await sleep(this.loadMs)
      this.loaded.push(model)
      this.loading.delete(model)
    })()
    this.loading.set(model, load)
    return load
  }
}

interface Outcome {
  model: string
  queueMs: number
}

async function serve(
  scheduler: VeloScheduler,
  manager: FakeManager,
  model: string,
  client: string,
  serviceMs: number,
): Promise<Outcome> {
  const lease = await scheduler.acquire({
    model,
    client,
    priority: 0,
    promptChars: 100,
    signal: new AbortController().signal,
  })
  manager.running.set(model, (manager.running.get(model) ?? 0) + 1)
  try {
    await manager.ensure(model)
    await sleep(serviceMs)
  } finally {
    manager.running.set(model, (manager.running.get(model) ?? 1) - 1)
    lease.release()
  }
  return { model, queueMs: lease.queueMs }
}

/** 40 requests A,B,A,B,... arriving every 100 ms; 500 ms each; loading a model takes 3 s. */
async function interleaved(maxWait: number) {
  const switches: ModelSwitchEvent[] = []
  const scheduler = createScheduler(
    { affinity: { maxWait }, maxQueue: 100, queueTimeout: 600_000 },
    { onSwitch: (event) => switches.push(event) },
  )
  const manager = new FakeManager(1, 3000)
  for (const model of ['A', 'B']) scheduler.setCapacity(model, 1)
  scheduler.defineGroup('managed', { models: ['A', 'B'], maxLoaded: 1 })
  const requests: Promise<Outcome>[] = []
  const arrivals = (async () => {
    for (let i = 0; i < 40; i++) {
      requests.push(serve(scheduler, manager, i % 2 === 0 ? 'A' : 'B', `client-${i % 3}`, 500))
      await sleep(100)
    }
  })()
  // How long a model went on having queued requests but no place, sampled every 100 ms.
  let longestModelWait = 0
  let done = false
  const waitingSince = new Map<string, number>()
  const sampler = (async () => {
    while (!done) {
      const status = scheduler.groupStatus('managed')
      for (const model of status?.active ?? []) waitingSince.delete(model)
      for (const { model } of status?.waiting ?? []) {
        const since = waitingSince.get(model) ?? Date.now()
        waitingSince.set(model, since)
        longestModelWait = Math.max(longestModelWait, Date.now() - since)
      }
      await sleep(100)
    }
  })()
  await vi.advanceTimersByTimeAsync(600_000)
  await arrivals
  const outcomes = await Promise.all(requests)
  done = true
  await vi.advanceTimersByTimeAsync(200)
  await sampler
  return { outcomes, manager, switches, scheduler, longestModelWait }
}

describe('model affinity across models sharing one machine', () => {
  beforeEach(() => {
    vi.useFakeTimers()
  })
  afterEach(() => {
    vi.useRealTimers()
  })

  it('serves interleaved A,B,A,B with far fewer loads than requests, and completes every request', async () => {
    const { outcomes, manager, switches, scheduler, longestModelWait } = await interleaved(10_000)
    expect(outcomes).toHaveLength(40)
    expect(outcomes.filter((o) => o.model === 'A')).toHaveLength(20)
    expect(manager.evictedWhileRunning).toBe(0)
    expect(manager.loads).toBeLessThanOrEqual(6)
    expect(switches.length).toBe(manager.loads)
    expect(scheduler.groupStatus('managed')?.switches).toBe(switches.length)
    // Nothing starves: a model with queued requests gets a place within the other model's turn
    // (maxWait) plus the request that was running when the other started to drain.
    expect(longestModelWait).toBeGreaterThan(0)
    expect(longestModelWait).toBeLessThanOrEqual(10_000 + 500)
  })

  it('with no patience (maxWait 0) the same traffic swaps models on almost every request', async () => {
    // The control for the test above: the policy, not the traffic, makes the difference.
    const { outcomes, manager } = await interleaved(0)
    expect(outcomes).toHaveLength(40)
    expect(manager.loads).toBeGreaterThanOrEqual(30)
  })

  it('does not starve a model while another one has requests without end', async () => {
    const maxWait = 5000
    const scheduler = createScheduler({ affinity: { maxWait }, maxQueue: 100, queueTimeout: 600_000 })
    const manager = new FakeManager(1, 2000)
    scheduler.setCapacity('A', 1)
    scheduler.setCapacity('B', 1)
    scheduler.defineGroup('managed', { models: ['A', 'B'], maxLoaded: 1 })
    let stop = false
    const aServed: number[] = []
    // Three clients keep A busy: each sends its next request as soon as the previous one ends.
    const loops = [0, 1, 2].map(async (client) => {
      while (!stop) {
        await serve(scheduler, manager, 'A', `a${client}`, 400)
        aServed.push(Date.now())
      }
    })
    let b: Outcome | undefined
    const single = (async () => {
      await sleep(3000)
      b = await serve(scheduler, manager, 'B', 'b', 400)
    })()
    await vi.advanceTimersByTimeAsync(60_000)
    stop = true
    await vi.advanceTimersByTimeAsync(60_000)
    await Promise.all([...loops, single])
    expect(b).toBeDefined()
    // B got its turn after at most maxWait plus the A request running when A started to drain.
    expect(b?.queueMs).toBeLessThanOrEqual(maxWait + 400)
    expect(b?.queueMs).toBeGreaterThanOrEqual(maxWait)
    // And A got the machine back afterwards.
    expect(aServed.filter((t) => t > 3000 + maxWait + 2400).length).toBeGreaterThan(10)
    expect(manager.evictedWhileRunning).toBe(0)
  })

  it('tells the process manager which models should be loaded and which comes next', async () => {
    const scheduler = createScheduler({ affinity: { maxWait: 60_000 } })
    scheduler.setCapacity('A', 1)
    scheduler.defineGroup('g', { models: ['A', 'B', 'C'], maxLoaded: 1, loaded: ['A'] })
    const a = await scheduler.acquire({
      model: 'A',
      client: 'x',
      priority: 0,
      promptChars: 1,
      signal: new AbortController().signal,
    })
    const req = (model: string) =>
      scheduler.acquire({
        model,
        client: 'x',
        priority: 0,
        promptChars: 1,
        signal: new AbortController().signal,
      })
    const c = req('C')
    await vi.advanceTimersByTimeAsync(10)
    const b = req('B')
    expect(scheduler.groupStatus('g')).toMatchObject({ active: ['A'], draining: [], next: 'C', switches: 0 })
    expect(scheduler.groupStatus('g')?.waiting.map((w) => w.model)).toEqual(['C', 'B'])
    a.release()
    const cLease = await c
    expect(scheduler.groupStatus('g')).toMatchObject({ active: ['C'], next: 'B', switches: 1 })
    cLease.release()
    ;(await b).release()
    expect(scheduler.groupStatus('g')).toMatchObject({
      active: ['B'],
      waiting: [],
      next: undefined,
      switches: 2,
    })
  })
})

describe('AffinityPolicy decisions', () => {
  const view = (
    maxLoaded: number,
    models: Record<string, readonly [ModelPlacement, number, number, number | undefined, number?]>,
  ): GroupView => ({
    maxLoaded,
    models: new Map(
      Object.entries(models).map(([model, [placement, queued, running, oldestQueuedAt, activeSince]]) => [
        model,
        { placement, queued, running, oldestQueuedAt, activeSince },
      ]),
    ),
  })
  const policy = new AffinityPolicy({ maxWaitMs: 1000 })

  it('takes a free place at once', () => {
    const decision = policy.decide(view(2, { A: ['active', 3, 1, 0], B: ['inactive', 1, 0, 50] }), 100)
    expect(decision.activate).toEqual([{ model: 'B', replaces: undefined, reason: 'free-place' }])
  })

  it('replaces an idle model at once', () => {
    const decision = policy.decide(
      view(1, { A: ['active', 0, 0, undefined], B: ['inactive', 1, 0, 50] }),
      100,
    )
    expect(decision.activate).toEqual([{ model: 'B', replaces: 'A', reason: 'idle' }])
    expect(decision.deactivate).toEqual(['A'])
  })

  it('keeps a busy model loaded until the waiter has waited maxWait, then drains the longest loaded', () => {
    const busy = {
      A: ['active', 2, 1, 0, 10],
      C: ['active', 1, 1, 0, 5],
      B: ['inactive', 1, 0, 500],
    } as const
    const early = policy.decide(view(2, { ...busy }), 1000)
    expect(early).toEqual({ activate: [], drain: [], undrain: [], deactivate: [] })
    expect(policy.nextWakeAt(view(2, { ...busy }), 1000)).toBe(1500)
    const late = policy.decide(view(2, { ...busy }), 1500)
    expect(late.drain).toEqual(['C'])
  })

  it('gives the place of a drained model to the waiter, not back to the drained model', () => {
    const decision = policy.decide(view(1, { A: ['draining', 5, 0, 0], B: ['inactive', 1, 0, 100] }), 2000)
    expect(decision.deactivate).toEqual(['A'])
    expect(decision.activate).toEqual([{ model: 'B', replaces: 'A', reason: 'free-place' }])
  })

  it('lets a draining model serve again when its waiter left', () => {
    const decision = policy.decide(
      view(1, { A: ['draining', 2, 1, 0], B: ['inactive', 0, 0, undefined] }),
      5000,
    )
    expect(decision.undrain).toEqual(['A'])
  })
})
