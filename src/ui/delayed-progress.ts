import type { ProgressReporter } from './progress.js'

/** Progress for work that is usually quick, so a quick run prints nothing extra. */
export interface DelayedProgress {
  /** The current phase; shown at once if the delay has passed, else remembered. */
  update(message: string): void
  /** Prints `message` only if progress was shown, and stops the timer. */
  done(message: string): void
  /** Stops the timer without printing: call it however the work ends. */
  stop(): void
  readonly shown: boolean
}

/** Shows the latest phase once the work has run for `delayMs`, and every phase after that. */
export function delayedProgress(reporter: ProgressReporter, delayMs: number): DelayedProgress {
  let phase: string | undefined
  let shown = false
  let timer: NodeJS.Timeout | undefined = setTimeout(() => {
    timer = undefined
    shown = true
    if (phase !== undefined) reporter.update(phase)
  }, delayMs)
  const stop = () => {
    clearTimeout(timer)
    timer = undefined
  }
  return {
    update(message) {
      phase = message
      if (shown) reporter.update(message)
    },
    done(message) {
      stop()
      if (shown) reporter.done(message)
    },
    stop,
    get shown() {
      return shown
    },
  }
}
