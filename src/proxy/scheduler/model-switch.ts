/**
 * Model affinity for models that share one machine (velo's managed llama-servers with `maxLoaded`,
 * or an Ollama with a bounded loaded set).
 *
 * Loading a model costs seconds; serving a request of a loaded model costs far less. Agents that
 * alternate between two models (A, B, A, B, ...) make a naive proxy swap on every request. The policy
 * here keeps serving the queued requests of the loaded models and switches when:
 *  - a place is free (fewer than `maxLoaded` models loaded), or
 *  - a loaded model has gone idle (nothing queued, nothing running) and another model waits, or
 *  - another model's oldest request has waited `maxWaitMs` and a loaded model has had its turn
 *    (been active for `maxWaitMs` too): that model, the one loaded longest, stops taking new requests
 *    (drains); when its running requests end, the waiting model takes its place.
 * The turn matters under a backlog: once requests of both models have queued for long, the waiter is
 * always "late" by arrival time, and without a guaranteed turn every switch would serve one request
 * and then switch again, which is the thrashing this exists to prevent.
 * Waiting models are taken in the order of their oldest request, so switches are first come, first
 * served across models too. The starvation bound: the first waiting model gets a place at most
 * `maxWaitMs` after it arrived or after the model ahead of it got its place, whichever is later, plus
 * the running requests of the model it replaces (and, with more models than places, the turns of
 * the models ahead of it).
 *
 * The policy is a pure function of a view of the group, so it can be tested and replaced on its own;
 * the scheduler keeps the state, applies decisions and wakes the policy up when a wait bound expires.
 */

/** A model's demand as the scheduler sees it. */
export interface ModelDemand {
  /** Requests waiting in its queue. */
  queued: number
  /** Requests holding a lease (running upstream). */
  running: number
  /** When its oldest queued request arrived (ms, the scheduler's clock); undefined when none. */
  oldestQueuedAt: number | undefined
}

export type ModelPlacement = 'active' | 'draining' | 'inactive'

export interface GroupView {
  maxLoaded: number
  /** Every model of the group with its placement and demand. */
  models: ReadonlyMap<string, ModelDemand & { placement: ModelPlacement; activeSince: number | undefined }>
}

export type SwitchReason = 'free-place' | 'idle' | 'max-wait'

export interface SwitchDecision {
  /** Models to start admitting (they are, or will be, loaded). */
  activate: { model: string; replaces: string | undefined; reason: SwitchReason }[]
  /** Active models that stop taking new requests so that a starving model can take their place. */
  drain: string[]
  /** Draining models that go back to active (the model they were draining for no longer waits). */
  undrain: string[]
  /** Models to unload: not admitting and nothing running. */
  deactivate: string[]
}

export interface ModelSwitchPolicy {
  decide(view: GroupView, now: number): SwitchDecision
  /** When the policy should be asked again even if nothing happens (a wait bound expiring). */
  nextWakeAt(view: GroupView, now: number): number | undefined
}

export interface AffinityPolicyOptions {
  /** How long a model's oldest request may wait while other models hold every place (ms). */
  maxWaitMs: number
}

export class AffinityPolicy implements ModelSwitchPolicy {
  readonly maxWaitMs: number

  constructor(options: AffinityPolicyOptions) {
    this.maxWaitMs = Math.max(0, options.maxWaitMs)
  }

  decide(view: GroupView, now: number): SwitchDecision {
    const decision: SwitchDecision = { activate: [], drain: [], undrain: [], deactivate: [] }
    const placement = new Map<string, ModelPlacement>()
    for (const [model, state] of view.models) placement.set(model, state.placement)
    const demand = (model: string) => view.models.get(model)

    // A draining model whose running requests ended leaves its place.
    const freed: string[] = []
    for (const [model, state] of view.models) {
      if (state.placement === 'draining' && state.running === 0) {
        decision.deactivate.push(model)
        placement.set(model, 'inactive')
        freed.push(model)
      }
    }

    const loaded = () => [...placement].filter(([, p]) => p !== 'inactive').map(([m]) => m)
    // A model that just left its place does not take it back in the same breath: its queued requests
    // are older than the waiter's, which would make the switch a no-op and starve the waiter.
    const waiting = [...view.models]
      .filter(
        ([model, state]) => placement.get(model) === 'inactive' && state.queued > 0 && !freed.includes(model),
      )
      .sort((a, b) => (a[1].oldestQueuedAt ?? now) - (b[1].oldestQueuedAt ?? now))

    let starving = 0
    for (const [model, state] of waiting) {
      if (loaded().length < view.maxLoaded) {
        placement.set(model, 'active')
        decision.activate.push({ model, replaces: freed.shift(), reason: 'free-place' })
        continue
      }
      const idle = loaded().find((m) => {
        const s = demand(m)
        return placement.get(m) === 'active' && s !== undefined && s.queued === 0 && s.running === 0
      })
      if (idle) {
        placement.set(idle, 'inactive')
        decision.deactivate.push(idle)
        placement.set(model, 'active')
        decision.activate.push({ model, replaces: idle, reason: 'idle' })
        continue
      }
      if (now - (state.oldestQueuedAt ?? now) >= this.maxWaitMs) starving++
      // Later waiters do not overtake an earlier one that cannot be placed yet.
      break
    }

    // One draining model per starving waiter that has no place yet; extra draining ones (their
    // waiter timed out or left) go back to serving.
    const draining = [...placement].filter(([, p]) => p === 'draining').map(([m]) => m)
    if (starving > draining.length) {
      const longestLoaded = [...placement]
        .filter(([m, p]) => p === 'active' && this.hadTurn(demand(m)?.activeSince, now))
        .map(([m]) => m)
        .sort((a, b) => (demand(a)?.activeSince ?? 0) - (demand(b)?.activeSince ?? 0))
      for (const model of longestLoaded.slice(0, starving - draining.length)) {
        placement.set(model, 'draining')
        decision.drain.push(model)
      }
    } else {
      for (const model of draining.slice(starving)) {
        placement.set(model, 'active')
        decision.undrain.push(model)
      }
    }
    return decision
  }

  nextWakeAt(view: GroupView, now: number): number | undefined {
    let earliest: number | undefined
    const consider = (at: number) => {
      if (at > now && (earliest === undefined || at < earliest)) earliest = at
    }
    let waiterDue = false
    for (const state of view.models.values()) {
      if (state.placement !== 'inactive' || state.queued === 0 || state.oldestQueuedAt === undefined) continue
      consider(state.oldestQueuedAt + this.maxWaitMs)
      if (now - state.oldestQueuedAt >= this.maxWaitMs) waiterDue = true
    }
    // A waiter is already late: wake up when the first loaded model has had its turn.
    if (waiterDue) {
      for (const state of view.models.values()) {
        if (state.placement === 'active' && state.activeSince !== undefined)
          consider(state.activeSince + this.maxWaitMs)
      }
    }
    return earliest
  }

  private hadTurn(activeSince: number | undefined, now: number): boolean {
    return activeSince === undefined || now - activeSince >= this.maxWaitMs
  }
}
