import { mkdirSync, openSync, write, writeSync } from 'node:fs'
import { dirname } from 'node:path'
import { type DestinationStream, type Logger, pino } from 'pino'
import pinoPretty from 'pino-pretty'

export type LogFormat = 'json' | 'pretty'

export interface LoggerOptions {
  format: LogFormat
  /** File descriptor, file path (appended to) or stream; stdout by default. */
  destination?: number | string | DestinationStream | NodeJS.WritableStream
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
  const stream =
    typeof destination === 'number' || typeof destination === 'string'
      ? batchedLines(destination)
      : destination
  const logger = pino({ level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, stream)
  // The line pino would write, built with one JSON.stringify: what pino spends on a request line
  // (its per-field serialiser, hooks and time function) was 4% of velo's CPU on the perf bench.
  const info = pino.levels.values['info'] ?? 30
  infoLines.set(logger, (fields, message) => {
    const rest = JSON.stringify(fields)
    const head = `{"level":${info},"time":"${new Date().toISOString()}"`
    stream.write(`${head}${rest === '{}' ? '' : `,${rest.slice(1, -1)}`},"msg":${JSON.stringify(message)}}\n`)
  })
  return logger
}

type LineWriter = (fields: Record<string, unknown>, message: string) => void
const infoLines = new WeakMap<Logger, LineWriter>()

/** `logger.info(fields, message)`, the same line, faster for a logger made by createLogger (JSON). */
export function logInfo(logger: Logger, fields: Record<string, unknown>, message: string): void {
  const fast = infoLines.get(logger)
  if (fast && logger.isLevelEnabled('info')) fast(fields, message)
  else logger.info(fields, message)
}

const FLUSH_MS = 100
/** A batch goes out once this full (or every FLUSH_MS). */
const BATCH_BYTES = 16 * 1024
/** Room for a batch and the longest line that does not get a write of its own. */
const BUFFER_BYTES = 64 * 1024
/** Batches waiting behind a slow reader, at most; past it lines are dropped (and counted). */
const MAX_QUEUED_BYTES = 16 * 1024 * 1024

/**
 * Log lines encoded straight into a buffer and written in batches of about BATCH_BYTES, or every
 * FLUSH_MS, one asynchronous write at a time (a full pipe is retried), and written out
 * synchronously when the process exits. One write per request line was 6% of velo's CPU under
 * load; gathering them in one growing string (as sonic-boom does) cost half of that again.
 */
export function batchedLines(dest: number | string): DestinationStream {
  let fd: number
  if (typeof dest === 'number') fd = dest
  else {
    mkdirSync(dirname(dest), { recursive: true })
    fd = openSync(dest, 'a')
  }
  let buffer = Buffer.allocUnsafe(BUFFER_BYTES)
  let used = 0
  const queue: Buffer[] = []
  let queued = 0
  let writing = false
  let broken = false
  let dropped = 0

  const send = (data: Buffer): void => {
    write(fd, data, 0, data.length, null, (error, written) => {
      if (error) {
        if ((error as NodeJS.ErrnoException).code === 'EAGAIN') {
          setTimeout(() => send(data), 10).unref()
          return
        }
        // The reader went away (EPIPE, a closed file): drop what is left, never crash velo.
        broken = true
        queue.length = 0
        queued = 0
        writing = false
        return
      }
      if (written < data.length) {
        send(data.subarray(written))
        return
      }
      writing = false
      pump()
    })
  }
  const pump = (): void => {
    if (writing || broken) return
    const next = queue.shift()
    if (!next) return
    queued -= next.length
    writing = true
    send(next)
  }
  const enqueue = (data: Buffer): void => {
    if (queued + data.length > MAX_QUEUED_BYTES) {
      dropped++
      return
    }
    queue.push(data)
    queued += data.length
    pump()
  }
  const flush = (): void => {
    if (used === 0 || broken) return
    const full = buffer.subarray(0, used)
    buffer = Buffer.allocUnsafe(BUFFER_BYTES)
    used = 0
    enqueue(full)
  }
  const timer = setInterval(flush, FLUSH_MS)
  timer.unref()
  process.once('exit', () => {
    if (broken) return
    try {
      // What no asynchronous write took yet; the one in flight (if any) finishes on its own.
      for (const data of queue) writeSync(fd, data)
      if (used > 0) writeSync(fd, buffer.subarray(0, used))
      if (dropped > 0)
        writeSync(fd, `{"level":40,"msg":"log lines dropped behind a slow reader","dropped":${dropped}}\n`)
    } catch {
      // The destination is gone: nothing can be written now.
    }
  })
  return {
    write(line: string) {
      if (broken) return
      // UTF-8 takes at most 3 bytes per UTF-16 unit: a line that might not fit gets its own write.
      if (line.length * 3 > BUFFER_BYTES - BATCH_BYTES) {
        flush()
        enqueue(Buffer.from(line, 'utf8'))
        return
      }
      used += buffer.write(line, used, 'utf8')
      if (used >= BATCH_BYTES) flush()
    },
  }
}

/** A logger that drops everything (tests, embedded servers). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' })
}

export type { Logger }
