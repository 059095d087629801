import { VeloError, type VeloErrorOptions } from '../../core/errors.js'
import type { AdmissionLease, AdmissionRequest, CapacityOptions, Scheduler } from '../pipeline-types.js'
import { FairQueue, type FairQueueEntry } from './fair-queue.js'
import {
  AffinityPolicy,
  type GroupView,
  type ModelDemand,
  type ModelPlacement,
  type ModelSwitchPolicy,
  type SwitchReason,
} from './model-switch.js'
import { SlotPicker } from './prefix-affinity.js'

/**
 * velo's scheduler: one queue per model in front of its upstream.
 *
 * - Admission: at most `capacity` requests of a model run at once, the upstream's real parallelism
 *   (the server sets it from llama-server's /props `total_slots`, Ollama's parallelism or a profile),
 *   so every slot stays busy and nothing piles up inside the engine where velo cannot reorder it.
 * - Order: higher priority first; within a priority, fair queueing across clients (fair-queue.ts).
 * - Bounds: a full model queue answers 429 with Retry-After, except that a client with fewer queued
 *   requests pushes out the newest request of the client with the most (so one client's flood cannot
 *   fill the queue for everyone); more than `maxQueueTotal` queued over all models answers 503; a
 *   request that waits longer than `queueTimeout` gets 429.
 * - Model affinity: models that share a machine form a group with `maxLoaded` places; only the
 *   group's active models admit requests, and a ModelSwitchPolicy (model-switch.ts) decides when to
 *   switch. The server's process manager learns of switches through `onSwitch` and can ask
 *   `groupStatus(group)` which models should be loaded and which one comes next.
 * - Prefix affinity: for upstreams with slots (`setCapacity(model, n, { slots: true })`), each lease
 *   carries the slot that last served the request's prefix (prefix-affinity.ts).
 */

/** The `scheduler:` section of velo.yaml after defaults (durations in ms). */
export interface SchedulerSettings {
  /** Capacity of a model until the server learns the upstream's real one. */
  defaultCapacity: number
  /** Requests waiting per model before 429. */
  maxQueue: number
  /** Requests waiting over all models before 503. */
  maxQueueTotal: number
  /** How long a request may wait in a queue (ms) before 429. */
  queueTimeout: number
  /** Fair-share weight by client (API key name or address); 1 when absent. */
  weights: Record<string, number>
  affinity: {
    /** How long a model's oldest request may wait while other models of its group are loaded (ms). */
    maxWait: number
  }
  /** Pin requests with a common prefix to one llama-server slot. */
  prefixAffinity: boolean
}

/**
 * A request the queue gave up on after it waited (timed out, or pushed out of a full queue): the
 * wait goes into `x-velo-queue-ms` like an admitted request's.
 */
export class QueueRejection extends VeloError {
  constructor(
    code: 'VELO_QUEUE_TIMEOUT' | 'VELO_QUEUE_FULL',
    message: string,
    options: VeloErrorOptions,
    /** How long the request waited in the queue (ms). */
    readonly queueMs: number,
  ) {
    super(code, message, options)
  }
}

export const DEFAULT_SCHEDULER_SETTINGS: SchedulerSettings = {
  defaultCapacity: 4,
  maxQueue: 64,
  maxQueueTotal: 512,
  queueTimeout: 30_000,
  weights: {},
  affinity: { maxWait: 10_000 },
  prefixAffinity: true,
}

export interface ModelSwitchEvent {
  group: string
  /** The model that starts admitting requests (the process manager should load it). */
  model: string
  /** The model whose place it takes, now idle (the process manager may unload it). */
  replaces: string | undefined
  reason: SwitchReason
}

export type SchedulerEvent =
  | { type: 'admitted'; model: string; client: string; queueMs: number; slot: number | undefined }
  | { type: 'released'; model: string; client: string; runMs: number }
  | {
      type: 'rejected'
      model: string
      client: string
      reason: 'queue-full' | 'pushed-out' | 'timeout' | 'overloaded' | 'aborted'
    }
  | ({ type: 'switch' } & ModelSwitchEvent)
  | { type: 'drain'; group: string; model: string }

export interface SchedulerCallbacks {
  /** A group switched models: load `model`, `replaces` (if any) has nothing running any more. */
  onSwitch?: (event: ModelSwitchEvent) => void
  /** Every admission, release, rejection and switch, for metrics (map to prom-client counters). */
  onEvent?: (event: SchedulerEvent) => void
  log?: (level: 'info' | 'warn', message: string) => void
  /** Clock in ms (tests pass a fake one); Date.now by default. */
  now?: () => number
  /** Replace the model-switch policy (AffinityPolicy with `affinity.maxWait` by default). */
  policy?: ModelSwitchPolicy
}

export interface ModelSnapshot {
  queueDepth: number
  running: number
  capacity: number
  paused: boolean
}

export interface GroupStatus {
  name: string
  maxLoaded: number
  /** Models admitting requests: these should be loaded. */
  active: string[]
  /** Models finishing their running requests before giving their place to a waiting model. */
  draining: string[]
  /** Models with queued requests and no place, oldest wait first. */
  waiting: { model: string; queued: number; waitedMs: number }[]
  /** The model that gets the next free place (the first of `waiting`), for preloading. */
  next: string | undefined
  /** Activations of a model that was not active, since the group was defined. */
  switches: number
}

export interface SchedulerStats {
  admitted: number
  rejected: { queueFull: number; pushedOut: number; timeout: number; overloaded: number; aborted: number }
  /** Model switches over all groups. */
  switches: number
  queued: number
  running: number
}

interface Waiter {
  request: AdmissionRequest
  enqueuedAt: number
  resolve: (lease: AdmissionLease) => void
  reject: (error: unknown) => void
  entry: FairQueueEntry<Waiter> | undefined
  timer: NodeJS.Timeout | undefined
  onAbort: (() => void) | undefined
}

interface ModelState {
  model: string
  capacity: number
  running: number
  paused: boolean
  queue: FairQueue<Waiter>
  slots: SlotPicker | undefined
  /** Exponentially weighted mean run time of a lease (ms), for Retry-After. */
  serviceMs: number | undefined
  group: GroupState | undefined
  placement: ModelPlacement
  activeSince: number | undefined
}

interface GroupState {
  name: string
  maxLoaded: number
  models: Set<string>
  timer: NodeJS.Timeout | undefined
  wakeAt: number | undefined
  switches: number
}

export class VeloScheduler implements Scheduler {
  private readonly settings: SchedulerSettings
  private readonly callbacks: SchedulerCallbacks
  private readonly now: () => number
  private readonly policy: ModelSwitchPolicy
  private readonly models = new Map<string, ModelState>()
  private readonly groups = new Map<string, GroupState>()
  private totalQueued = 0
  private readonly counters = {
    admitted: 0,
    switches: 0,
    rejected: { queueFull: 0, pushedOut: 0, timeout: 0, overloaded: 0, aborted: 0 },
  }

  constructor(settings: Partial<SchedulerSettings> = {}, callbacks: SchedulerCallbacks = {}) {
    this.settings = { ...DEFAULT_SCHEDULER_SETTINGS, ...settings }
    this.callbacks = callbacks
    this.now = callbacks.now ?? (() => Date.now())
    this.policy = callbacks.policy ?? new AffinityPolicy({ maxWaitMs: this.settings.affinity.maxWait })
  }

  acquire(request: AdmissionRequest): Promise<AdmissionLease> {
    if (request.signal.aborted) return Promise.reject(request.signal.reason)
    const state = this.state(request.model)
    if (state.queue.size === 0 && this.canAdmit(state)) {
      return Promise.resolve(this.grant(state, request, this.now()))
    }
    if (this.totalQueued >= this.settings.maxQueueTotal) {
      this.emit({ type: 'rejected', model: request.model, client: request.client, reason: 'overloaded' })
      return Promise.reject(
        new VeloError(
          'VELO_OVERLOADED',
          `velo is overloaded: ${this.totalQueued} requests are queued over all models`,
          {
            status: 503,
            retryAfterSeconds: this.retryAfter(state),
            suggestion: 'retry after the Retry-After delay, or raise scheduler.maxQueueTotal in velo.yaml',
          },
        ),
      )
    }
    if (state.queue.size >= this.settings.maxQueue && !this.pushOut(state, request)) {
      this.emit({ type: 'rejected', model: request.model, client: request.client, reason: 'queue-full' })
      return Promise.reject(this.queueFull(state))
    }
    return new Promise<AdmissionLease>((resolve, reject) => {
      const waiter: Waiter = {
        request,
        enqueuedAt: this.now(),
        resolve,
        reject,
        entry: undefined,
        timer: undefined,
        onAbort: undefined,
      }
      waiter.entry = state.queue.push(waiter, request.client, request.priority)
      this.totalQueued++
      waiter.timer = setTimeout(() => {
        if (!this.dequeue(state, waiter)) return
        this.emit({ type: 'rejected', model: state.model, client: request.client, reason: 'timeout' })
        const waited = Math.max(0, this.now() - waiter.enqueuedAt)
        reject(
          new QueueRejection(
            'VELO_QUEUE_TIMEOUT',
            `the request waited ${waited} ms in the queue for model "${state.model}" without a free slot`,
            {
              status: 429,
              retryAfterSeconds: this.retryAfter(state),
              suggestion: 'retry after the Retry-After delay, or raise scheduler.queueTimeout in velo.yaml',
            },
            waited,
          ),
        )
        this.changed(state)
      }, this.settings.queueTimeout)
      waiter.timer.unref?.()
      waiter.onAbort = () => {
        if (!this.dequeue(state, waiter)) return
        this.emit({ type: 'rejected', model: state.model, client: request.client, reason: 'aborted' })
        reject(request.signal.reason)
        this.changed(state)
      }
      request.signal.addEventListener('abort', waiter.onAbort, { once: true })
      this.changed(state)
    })
  }

  setCapacity(model: string, slots: number, options: CapacityOptions = {}): void {
    const state = this.state(model)
    state.capacity = Math.max(1, Math.floor(slots))
    if (options.slots && this.settings.prefixAffinity) {
      if (state.slots) state.slots.resize(state.capacity)
      else state.slots = new SlotPicker(state.capacity)
    } else if (options.slots === false) state.slots = undefined
    this.changed(state)
  }

  /**
   * New fair-share weights (a reloaded `scheduler.weights`): requests queued from now on get their
   * tags by them; requests already queued keep theirs.
   */
  setWeights(weights: Record<string, number>): void {
    this.settings.weights = { ...weights }
  }

  pause(model: string): void {
    this.state(model).paused = true
  }

  resume(model: string): void {
    const state = this.state(model)
    state.paused = false
    this.changed(state)
  }

  snapshot(model: string): ModelSnapshot {
    const state = this.models.get(model)
    if (!state) {
      return { queueDepth: 0, running: 0, capacity: this.settings.defaultCapacity, paused: false }
    }
    return {
      queueDepth: state.queue.size,
      running: state.running,
      capacity: state.capacity,
      paused: state.paused,
    }
  }

  /** Every model the scheduler has seen, with its snapshot (for /velo/status). */
  snapshots(): Record<string, ModelSnapshot> {
    const out: Record<string, ModelSnapshot> = {}
    for (const model of this.models.keys()) out[model] = this.snapshot(model)
    return out
  }

  /**
   * Declare models that share one machine with `maxLoaded` places (managed llama-servers, an Ollama's
   * loaded set). Calling it again for the same name replaces the membership; `loaded` names models
   * already loaded, which start active so velo does not switch away from them for nothing.
   */
  defineGroup(name: string, options: { models: string[]; maxLoaded: number; loaded?: string[] }): void {
    const previous = this.groups.get(name)
    if (previous?.timer) clearTimeout(previous.timer)
    const group: GroupState = {
      name,
      maxLoaded: Math.max(1, Math.floor(options.maxLoaded)),
      models: new Set(options.models),
      timer: undefined,
      wakeAt: undefined,
      switches: previous?.switches ?? 0,
    }
    this.groups.set(name, group)
    if (previous) {
      for (const model of previous.models) {
        const state = this.models.get(model)
        if (state && !group.models.has(model)) state.group = undefined
      }
    }
    const loaded = new Set((options.loaded ?? []).slice(0, group.maxLoaded))
    for (const model of group.models) {
      const state = this.state(model)
      const wasMember = state.group?.name === name
      state.group = group
      if (!wasMember) {
        state.placement = loaded.has(model) || state.running > 0 ? 'active' : 'inactive'
        state.activeSince = state.placement === 'active' ? this.now() : undefined
      }
    }
    this.rebalance(group)
  }

  removeGroup(name: string): void {
    const group = this.groups.get(name)
    if (!group) return
    if (group.timer) clearTimeout(group.timer)
    this.groups.delete(name)
    for (const model of group.models) {
      const state = this.models.get(model)
      if (!state) continue
      state.group = undefined
      this.pump(state)
    }
  }

  /** What the process manager needs: which models should be loaded, and which one comes next. */
  groupStatus(name: string): GroupStatus | undefined {
    const group = this.groups.get(name)
    if (!group) return undefined
    const now = this.now()
    const active: string[] = []
    const draining: string[] = []
    const waiting: GroupStatus['waiting'] = []
    for (const model of group.models) {
      const state = this.state(model)
      if (state.placement === 'active') active.push(model)
      else if (state.placement === 'draining') draining.push(model)
      if (state.placement !== 'active' && state.queue.size > 0) {
        const oldest = state.queue.oldest()?.value.enqueuedAt ?? now
        waiting.push({ model, queued: state.queue.size, waitedMs: now - oldest })
      }
    }
    waiting.sort((a, b) => b.waitedMs - a.waitedMs)
    return {
      name,
      maxLoaded: group.maxLoaded,
      active,
      draining,
      waiting,
      next: waiting[0]?.model,
      switches: group.switches,
    }
  }

  /** Reject everything queued (server shutdown) and stop the timers. */
  close(reason: unknown = new VeloError('VELO_OVERLOADED', 'velo is shutting down', { status: 503 })): void {
    for (const group of this.groups.values()) if (group.timer) clearTimeout(group.timer)
    for (const state of this.models.values()) {
      for (const waiter of state.queue.values()) {
        if (this.dequeue(state, waiter)) waiter.reject(reason)
      }
    }
  }

  private state(model: string): ModelState {
    let state = this.models.get(model)
    if (!state) {
      state = {
        model,
        capacity: this.settings.defaultCapacity,
        running: 0,
        paused: false,
        queue: new FairQueue<Waiter>({ weightOf: (client) => this.settings.weights[client] ?? 1 }),
        slots: undefined,
        serviceMs: undefined,
        group: undefined,
        placement: 'active',
        activeSince: undefined,
      }
      this.models.set(model, state)
    }
    return state
  }

  private canAdmit(state: ModelState): boolean {
    if (state.paused || state.running >= state.capacity) return false
    return state.group === undefined || state.placement === 'active'
  }

  private grant(state: ModelState, request: AdmissionRequest, enqueuedAt: number): AdmissionLease {
    const started = this.now()
    state.running++
    const slot = state.slots?.pick(request.prefixKeys?.())
    const queueMs = Math.max(0, started - enqueuedAt)
    let released = false
    this.emit({ type: 'admitted', model: state.model, client: request.client, queueMs, slot })
    return {
      queueMs,
      slot,
      release: () => {
        if (released) return
        released = true
        state.running--
        if (slot !== undefined) state.slots?.release(slot)
        const runMs = Math.max(0, this.now() - started)
        state.serviceMs = state.serviceMs === undefined ? runMs : state.serviceMs * 0.8 + runMs * 0.2
        this.emit({ type: 'released', model: state.model, client: request.client, runMs })
        this.changed(state)
      },
    }
  }

  /** Take a waiter out of its queue; false when it already left (served, timed out, aborted). */
  private dequeue(state: ModelState, waiter: Waiter): boolean {
    if (!waiter.entry || !state.queue.remove(waiter.entry)) return false
    this.settle(waiter)
    return true
  }

  private settle(waiter: Waiter): void {
    waiter.entry = undefined
    this.totalQueued--
    if (waiter.timer) clearTimeout(waiter.timer)
    if (waiter.onAbort) waiter.request.signal.removeEventListener('abort', waiter.onAbort)
  }

  /** Make room in a full queue by pushing out the newest request of the heaviest client, if fair. */
  private pushOut(state: ModelState, request: AdmissionRequest): boolean {
    const heaviest = state.queue.heaviestClient()
    if (!heaviest || heaviest.client === request.client) return false
    if (heaviest.count <= state.queue.queuedFor(request.client) + 1) return false
    const victim = state.queue.lastOf(heaviest.client)
    if (!victim || victim.priority > request.priority) return false
    const waiter = victim.value
    if (!this.dequeue(state, waiter)) return false
    this.emit({ type: 'rejected', model: state.model, client: heaviest.client, reason: 'pushed-out' })
    waiter.reject(this.queueFull(state, Math.max(0, this.now() - waiter.enqueuedAt)))
    return true
  }

  /** `waitedMs`: how long the rejected request had been queued (0 for one turned away on arrival). */
  private queueFull(state: ModelState, waitedMs = 0): VeloError {
    return new QueueRejection(
      'VELO_QUEUE_FULL',
      `the queue for model "${state.model}" is full (${state.queue.size} requests waiting)`,
      {
        status: 429,
        retryAfterSeconds: this.retryAfter(state),
        suggestion: 'retry after the Retry-After delay, or raise scheduler.maxQueue in velo.yaml',
      },
      waitedMs,
    )
  }

  /** Seconds until a place is likely free: the queue ahead divided by the capacity, times the run time. */
  private retryAfter(state: ModelState): number {
    const perRequest = state.serviceMs ?? 1000
    const seconds = Math.ceil(((state.queue.size + 1) * perRequest) / Math.max(1, state.capacity) / 1000)
    return Math.min(60, Math.max(1, seconds))
  }

  private changed(state: ModelState): void {
    if (state.group) this.rebalance(state.group)
    else this.pump(state)
  }

  private pump(state: ModelState): void {
    while (state.queue.size > 0 && this.canAdmit(state)) {
      const entry = state.queue.shift()
      if (!entry) break
      const waiter = entry.value
      this.settle(waiter)
      waiter.resolve(this.grant(state, waiter.request, waiter.enqueuedAt))
    }
  }

  private view(group: GroupState): GroupView {
    const models = new Map<
      string,
      ModelDemand & { placement: ModelPlacement; activeSince: number | undefined }
    >()
    for (const model of group.models) {
      const state = this.state(model)
      models.set(model, {
        queued: state.queue.size,
        running: state.running,
        oldestQueuedAt: state.queue.oldest()?.value.enqueuedAt,
        placement: state.placement,
        activeSince: state.activeSince,
      })
    }
    return { maxLoaded: group.maxLoaded, models }
  }

  private rebalance(group: GroupState): void {
    const now = this.now()
    const decision = this.policy.decide(this.view(group), now)
    for (const model of decision.deactivate) {
      const state = this.state(model)
      state.placement = 'inactive'
      state.activeSince = undefined
    }
    for (const model of decision.drain) {
      this.state(model).placement = 'draining'
      this.emit({ type: 'drain', group: group.name, model })
      this.callbacks.log?.(
        'info',
        `model ${model} drains so that a waiting model of group ${group.name} can load`,
      )
    }
    for (const model of decision.undrain) this.state(model).placement = 'active'
    for (const { model, replaces, reason } of decision.activate) {
      const state = this.state(model)
      state.placement = 'active'
      state.activeSince = now
      group.switches++
      const event: ModelSwitchEvent = { group: group.name, model, replaces, reason }
      this.emit({ type: 'switch', ...event })
      this.callbacks.onSwitch?.(event)
    }
    for (const model of group.models) this.pump(this.state(model))
    // A model told to drain with nothing running leaves at once: ask again so the waiter gets its place.
    if (decision.drain.length > 0) {
      this.rebalance(group)
      return
    }
    this.scheduleWake(group, this.policy.nextWakeAt(this.view(group), now))
  }

  private scheduleWake(group: GroupState, at: number | undefined): void {
    if (at === group.wakeAt) return
    if (group.timer) clearTimeout(group.timer)
    group.timer = undefined
    group.wakeAt = at
    if (at === undefined) return
    group.timer = setTimeout(
      () => {
        group.timer = undefined
        group.wakeAt = undefined
        if (this.groups.get(group.name) === group) this.rebalance(group)
      },
      Math.max(0, at - this.now()),
    )
    group.timer.unref?.()
  }

  /** Counters since start (the same events as `onEvent`, summed), plus what is queued and running now. */
  stats(): SchedulerStats {
    let running = 0
    for (const state of this.models.values()) running += state.running
    return {
      admitted: this.counters.admitted,
      rejected: { ...this.counters.rejected },
      switches: this.counters.switches,
      queued: this.totalQueued,
      running,
    }
  }

  private emit(event: SchedulerEvent): void {
    if (event.type === 'admitted') this.counters.admitted++
    else if (event.type === 'switch') this.counters.switches++
    else if (event.type === 'rejected') {
      const key = {
        'queue-full': 'queueFull',
        'pushed-out': 'pushedOut',
        timeout: 'timeout',
        overloaded: 'overloaded',
        aborted: 'aborted',
      } as const
      this.counters.rejected[key[event.reason]]++
    }
    this.callbacks.onEvent?.(event)
  }
}

export function createScheduler(
  settings: Partial<SchedulerSettings> = {},
  callbacks: SchedulerCallbacks = {},
): VeloScheduler {
  return new VeloScheduler(settings, callbacks)
}

/**
 * The request's priority: the `x-velo-priority` header when it is an integer, else the client's
 * default from `scheduler.priorities`, else `scheduler.defaultPriority`; clamped to [-100, 100].
 */
export function resolvePriority(
  header: string | string[] | undefined,
  client: string,
  settings: { priorities?: Record<string, number>; defaultPriority?: number } = {},
): number {
  const raw = Array.isArray(header) ? header[0] : header
  const parsed = raw !== undefined && /^\s*[+-]?\d+\s*$/.test(raw) ? Number.parseInt(raw, 10) : undefined
  const value = parsed ?? settings.priorities?.[client] ?? settings.defaultPriority ?? 0
  return Math.min(100, Math.max(-100, value))
}
