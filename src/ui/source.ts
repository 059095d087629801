import type { VeloStatus } from '../proxy/status-types.js'

/**
 * Where the dashboard's figures come from: serve's own metrics in process, or a running velo's
 * `/velo/status` stream for `velo top`. The views only ever see this interface.
 */
export interface StatusSource {
  /** The latest snapshot; undefined until the first one is known. */
  snapshot(): VeloStatus | undefined
  /** Calls `listener` whenever the snapshot or the connection changes; returns the unsubscribe. */
  subscribe(listener: () => void): () => void
  /** For remote sources: whether the stream is up. In-process sources leave it out (always live). */
  connection?(): ConnectionInfo
  /** Stops reconnecting and releases sockets and timers. */
  close?(): void
}

export interface ConnectionInfo {
  state: 'connecting' | 'connected' | 'disconnected'
  /** What is being watched, for the header (`http://127.0.0.1:8000`). */
  target: string
  /** Why the last attempt failed. */
  error: string | undefined
  /** Failed attempts since the stream was last up; 0 while connected. */
  attempts: number
}

/** What the keys do. Each returns when velo has done it (or failed: the dashboard shows the error). */
export interface DashboardActions {
  unload(modelId: string): Promise<void>
  load(modelId: string): Promise<void>
  pause(modelId: string): Promise<void>
  resume(modelId: string): Promise<void>
  clearCache(): Promise<void>
}

/** A key press, as the dashboard reports it. */
export type DashboardAction =
  | { type: 'unload'; model: string }
  | { type: 'load'; model: string }
  | { type: 'pause'; model: string }
  | { type: 'resume'; model: string }
  | { type: 'clear-cache' }
  | { type: 'quit' }

/**
 * A source over a function that returns the current snapshot, polled every `intervalMs` and
 * whenever `notify()` is called (serve calls it when a model changes state, so the table does not
 * wait for the next tick).
 */
export function createPollingSource(
  read: () => VeloStatus,
  options: { intervalMs?: number } = {},
): StatusSource & { notify(): void } {
  const listeners = new Set<() => void>()
  let latest: VeloStatus | undefined
  let timer: NodeJS.Timeout | undefined
  const refresh = () => {
    latest = read()
    for (const listener of listeners) listener()
  }
  return {
    snapshot() {
      latest ??= read()
      return latest
    },
    subscribe(listener) {
      listeners.add(listener)
      if (!timer) {
        timer = setInterval(refresh, options.intervalMs ?? 1000)
        timer.unref()
      }
      return () => {
        listeners.delete(listener)
        if (listeners.size === 0 && timer) {
          clearInterval(timer)
          timer = undefined
        }
      }
    },
    notify: refresh,
    close() {
      listeners.clear()
      if (timer) clearInterval(timer)
      timer = undefined
    },
  }
}
