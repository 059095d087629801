import { type DestinationStream, type Logger, pino } from 'pino'
import pinoPretty from 'pino-pretty'

export type LogFormat = 'json' | 'pretty'

export interface LoggerOptions {
  format: LogFormat
  /** File descriptor or stream; stdout by default. */
  destination?: number | DestinationStream | NodeJS.WritableStream
  level?: string
  /** Colors in pretty output; defaults to whether the destination is a TTY. */
  colorize?: boolean
}

/** velo serve's logger: one JSON object per line, or pino-pretty's readable lines. */
export function createLogger(options: LoggerOptions): Logger {
  const level = options.level ?? 'info'
  const destination = options.destination ?? 1
  if (options.format === 'pretty') {
    const stream = pinoPretty({
      destination: destination as number | NodeJS.WritableStream,
      colorize: options.colorize ?? (typeof destination === 'number' && process.stdout.isTTY === true),
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname',
      singleLine: true,
      sync: true,
    })
    return pino({ level, base: undefined }, stream)
  }
  // Asynchronous and batched: a request never waits on a write to the terminal or pipe, and lines
  // go out in writes of about 4 KiB or every FLUSH_MS, not one system call per request line (that was
  // 6% of velo's CPU under load). pino flushes what is left when the process exits.
  const stream = typeof destination === 'number' ? batchedDestination(destination) : destination
  return pino({ level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, stream)
}

const FLUSH_MS = 100

function batchedDestination(fd: number): DestinationStream {
  const stream = pino.destination({ dest: fd, sync: false, minLength: 4096 })
  const timer = setInterval(() => {
    try {
      stream.flush()
    } catch {
      // Destroyed (the pipe closed): nothing left to flush to.
      clearInterval(timer)
    }
  }, FLUSH_MS)
  timer.unref()
  return stream
}

/** A logger that drops everything (tests, embedded servers). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' })
}

export type { Logger }
