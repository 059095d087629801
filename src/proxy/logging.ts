import { type DestinationStream, type Logger, pino } from 'pino'
import pinoPretty from 'pino-pretty'
import sonicBoom from 'sonic-boom'

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
  // Asynchronous and batched: a request never waits on a write to the terminal or pipe (see batchedLines).
  const stream = typeof destination === 'number' ? batchedLines(destination) : destination
  return pino({ level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, stream)
}

const FLUSH_MS = 100
const BATCH_BYTES = 16 * 1024

/**
 * Log lines gathered in an array and written in batches of about BATCH_BYTES, or every FLUSH_MS,
 * through sonic-boom (asynchronous, retries a full pipe), and written out synchronously when the
 * process exits. One write per request line was 6% of velo's CPU under load; sonic-boom's own
 * buffering appends to one growing string and measures it on every line, which costs as much again.
 */
export function batchedLines(dest: number | string): DestinationStream {
  let pending: string[] = []
  let bytes = 0
  // Registered before the sonic-boom exists, so that it runs before anything that closes it.
  const drain = (): void => {
    if (pending.length === 0) return
    const data = pending.length === 1 ? (pending[0] ?? '') : pending.join('')
    pending = []
    bytes = 0
    sonic.write(data)
  }
  process.once('exit', () => {
    try {
      drain()
      sonic.flushSync()
    } catch {
      // The destination is gone (a closed pipe): nothing can be written now.
    }
  })
  const sonic = new sonicBoom.SonicBoom({ dest, sync: false, mkdir: true, maxWrite: 4 * BATCH_BYTES })
  // A closed pipe (the reader went away) must not crash velo: its lines are dropped.
  sonic.on('error', () => {
    pending = []
    bytes = 0
  })
  const timer = setInterval(() => {
    try {
      drain()
    } catch {
      // Destroyed (the pipe closed): nothing left to write to.
      clearInterval(timer)
    }
  }, FLUSH_MS)
  timer.unref()
  return {
    write(line: string) {
      pending.push(line)
      bytes += line.length
      if (bytes >= BATCH_BYTES) drain()
    },
  }
}

/** A logger that drops everything (tests, embedded servers). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' })
}

export type { Logger }
