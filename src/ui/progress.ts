import { canDrawLive } from './terminal.js'

/**
 * A progress line for long work: redrawn in place on a TTY, plain lines otherwise (CI, pipes),
 * printed to stderr so `--json` output on stdout stays clean. bench and optimize draw the richer
 * ProgressView instead (live-progress.tsx) and fall back to these plain lines.
 */
export interface ProgressReporter {
  update(message: string, percent?: number): void
  done(message: string): void
}

export function createProgress(
  stream: NodeJS.WriteStream = process.stderr,
  env: NodeJS.ProcessEnv = process.env,
): ProgressReporter {
  const live = canDrawLive(env, stream)
  let lastBucket = -1
  let lastMessage = ''
  return {
    update(message, percent) {
      if (live) {
        const bar = percent === undefined ? '' : `${renderBar(percent, 20)} ${String(percent).padStart(3)}% `
        const width = (stream.columns || 80) - 1
        stream.write(`\r\x1b[2K${`${bar}${message}`.slice(0, width)}`)
        return
      }
      if (percent === undefined) {
        if (message !== lastMessage) stream.write(`${message}\n`)
        lastMessage = message
        return
      }
      const bucket = Math.floor(percent / 10)
      if (bucket !== lastBucket) {
        lastBucket = bucket
        stream.write(`${String(percent).padStart(3)}% ${message}\n`)
      }
    },
    done(message) {
      stream.write(live ? `\r\x1b[2K${message}\n` : `${message}\n`)
    },
  }
}

export function renderBar(percent: number, width: number): string {
  const filled = Math.max(0, Math.min(width, Math.round((percent / 100) * width)))
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`
}
