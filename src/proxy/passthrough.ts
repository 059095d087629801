import type { AdmissionLease, AdmissionRequest, Scheduler } from './pipeline-types.js'

/**
 * The scheduler serve uses when none is given: admits every request at once (the upstream queues
 * them itself). It only honours pause, which operators use from the dashboard.
 */
export function passThroughScheduler(): Scheduler {
  const paused = new Map<string, Set<() => void>>()
  const running = new Map<string, number>()
  const capacity = new Map<string, number>()

  const admit = (model: string, started: number): AdmissionLease => {
    running.set(model, (running.get(model) ?? 0) + 1)
    let released = false
    return {
      queueMs: performance.now() - started,
      slot: undefined,
      release() {
        if (released) return
        released = true
        running.set(model, (running.get(model) ?? 1) - 1)
      },
    }
  }

  return {
    acquire(request: AdmissionRequest): Promise<AdmissionLease> {
      const started = performance.now()
      const waiters = paused.get(request.model)
      if (!waiters) return Promise.resolve(admit(request.model, started))
      return new Promise((resolve, reject) => {
        const { signal } = request
        const go = (): void => {
          signal.removeEventListener('abort', onAbort)
          resolve(admit(request.model, started))
        }
        const onAbort = (): void => {
          waiters.delete(go)
          reject(signal.reason)
        }
        if (signal.aborted) {
          reject(signal.reason)
          return
        }
        waiters.add(go)
        signal.addEventListener('abort', onAbort, { once: true })
      })
    },
    setCapacity(model, slots) {
      capacity.set(model, slots)
    },
    pause(model) {
      if (!paused.has(model)) paused.set(model, new Set())
    },
    resume(model) {
      const waiters = paused.get(model)
      paused.delete(model)
      for (const go of waiters ?? []) go()
    },
    snapshot(model) {
      return {
        queueDepth: paused.get(model)?.size ?? 0,
        running: running.get(model) ?? 0,
        capacity: capacity.get(model) ?? 0,
        paused: paused.has(model),
      }
    },
  }
}
