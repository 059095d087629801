import { render } from 'ink'
import { LiveDashboard } from './LiveDashboard.js'
import type { DashboardActions, StatusSource } from './source.js'

export interface RunDashboardOptions {
  source: StatusSource
  actions: DashboardActions
  stdout?: NodeJS.WriteStream
  stdin?: NodeJS.ReadStream
  /** Style the text; defaults to off under NO_COLOR or TERM=dumb. */
  color?: boolean
  /** Least time between redraws for new figures (250 ms: at most 4 a second). */
  refreshMs?: number
}

export type DashboardExit =
  | { reason: 'quit' }
  | { reason: 'signal'; signal: NodeJS.Signals }
  | { reason: 'closed' }

export interface DashboardHandle {
  /**
   * Settles once the terminal is restored: on `q`/Ctrl-C (`quit`), on SIGTERM/SIGHUP/SIGINT
   * (`signal`; the caller decides how to shut down), or after `close()`. Rejects when a view crashed.
   */
  closed: Promise<DashboardExit>
  close(): void
}

// The alternate screen keeps the user's scrollback intact; the cursor is hidden while drawing.
const ENTER = '\x1b[?1049h\x1b[H\x1b[2J\x1b[?25l'
export const RESTORE_TERMINAL = '\x1b[?1049l\x1b[?25h'
const SIGNALS: NodeJS.Signals[] = ['SIGTERM', 'SIGHUP', 'SIGINT']

/**
 * Draw the live dashboard full-screen on a TTY until the user quits. The terminal (alternate
 * screen, cursor, raw mode) is restored on every way out: quit, close(), a signal, a crash in a view,
 * and an uncaught exception anywhere in the process (restored before Node prints it, so it shows).
 */
export function runDashboard(options: RunDashboardOptions): DashboardHandle {
  const stdout = options.stdout ?? process.stdout
  const stdin = options.stdin ?? process.stdin
  let restored = false
  let finished = false
  let settle: (exit: DashboardExit | Error) => void = () => {}
  const closed = new Promise<DashboardExit>((resolve, reject) => {
    settle = (exit) => (exit instanceof Error ? reject(exit) : resolve(exit))
  })

  const restore = () => {
    if (restored) return
    restored = true
    try {
      stdout.write(RESTORE_TERMINAL)
      if (stdin.isTTY) stdin.setRawMode(false)
    } catch {
      // The terminal is gone (hangup): nothing left to restore.
    }
  }
  const onSignal = (signal: NodeJS.Signals) => finish({ reason: 'signal', signal })
  const detach = () => {
    process.off('exit', restore)
    process.off('uncaughtExceptionMonitor', restore)
    for (const signal of SIGNALS) process.off(signal, onSignal)
  }
  const finish = (exit: DashboardExit | Error) => {
    if (finished) return
    finished = true
    instance.unmount()
    restore()
    // Detach on the next turn: removing a signal listener while that signal is being delivered
    // makes signal-exit (Ink's, cli-cursor's) believe it is alone and kill the process.
    setImmediate(() => {
      detach()
      settle(exit)
    })
  }

  stdout.write(ENTER)
  process.on('exit', restore)
  process.on('uncaughtExceptionMonitor', restore)
  for (const signal of SIGNALS) process.on(signal, onSignal)
  const instance = render(
    <LiveDashboard
      source={options.source}
      actions={options.actions}
      color={options.color}
      refreshMs={options.refreshMs ?? 250}
      onQuit={() => finish({ reason: 'quit' })}
    />,
    {
      stdout,
      stdin,
      exitOnCtrlC: false,
      // Each frame goes out as one write (erase and redraw, inside a synchronized update where the
      // terminal supports it), and only when it differs from the last. Ink 6.8's incremental mode
      // drew the frame one line low after the first redraw under tmux, so it stays off.
      maxFps: 10,
    },
  )
  instance.waitUntilExit().then(
    () => finish({ reason: 'closed' }),
    (error: unknown) => finish(error instanceof Error ? error : new Error(String(error))),
  )
  return { closed, close: () => finish({ reason: 'closed' }) }
}
