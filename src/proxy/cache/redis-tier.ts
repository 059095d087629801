import { Redis } from 'ioredis'
import type { CachedResponse } from '../pipeline-types.js'

/**
 * The shared tier of the exact cache: several velo instances point `cache.redis` at one Redis and
 * answer each other's repeated requests.
 *
 * Redis is a helper, never a dependency: commands are not queued while the connection is down
 * (`enableOfflineQueue: false`) and time out after `commandTimeoutMs`, every failure reads as a miss,
 * and ioredis keeps reconnecting in the background. The tier reports each change between up and down
 * once (log and status callback), not once per failed command.
 */

export type RedisStatus = 'up' | 'down'

export interface RedisTierOptions {
  url: string
  /** Key prefix; entries are `${prefix}${key}`. */
  prefix: string
  ttlMs: number
  commandTimeoutMs?: number
  onStatus?: (status: RedisStatus, error: string | undefined) => void
  log?: (level: 'info' | 'warn', message: string) => void
}

function redactUrl(url: string): string {
  try {
    const parsed = new URL(url)
    if (parsed.password) parsed.password = '***'
    return parsed.toString()
  } catch {
    return 'the configured Redis'
  }
}

function isCachedResponse(value: unknown): value is CachedResponse {
  if (typeof value !== 'object' || value === null) return false
  const record = value as Record<string, unknown>
  return (
    typeof record['status'] === 'number' &&
    typeof record['contentType'] === 'string' &&
    (record['chunks'] === undefined || Array.isArray(record['chunks'])) &&
    (record['body'] === undefined || typeof record['body'] === 'string')
  )
}

export class RedisTier {
  private readonly client: Redis
  private current: RedisStatus = 'down'
  private reported: RedisStatus | undefined
  private readonly firstReady: Promise<void>
  private closed = false

  constructor(private readonly options: RedisTierOptions) {
    this.client = new Redis(options.url, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: 2000,
      commandTimeout: options.commandTimeoutMs ?? 1000,
      // Keep trying in the background, at most every 2 s, for as long as velo runs.
      retryStrategy: (times) => Math.min(times * 200, 2000),
      lazyConnect: false,
    })
    this.firstReady = new Promise<void>((resolve) => {
      const done = () => {
        this.client.off('ready', done)
        this.client.off('error', done)
        resolve()
      }
      this.client.once('ready', done)
      this.client.once('error', done)
    })
    this.client.on('ready', () => this.transition('up', undefined))
    this.client.on('error', (error: Error) => this.transition('down', error.message))
    this.client.on('close', () => this.transition('down', 'connection closed'))
  }

  get status(): RedisStatus {
    return this.current
  }

  /** Resolves once the first connection attempt succeeded or failed (startup, tests). */
  ready(): Promise<void> {
    return this.firstReady
  }

  async get(key: string): Promise<CachedResponse | undefined> {
    if (this.current !== 'up') return undefined
    try {
      const raw = await this.client.get(this.options.prefix + key)
      if (raw === null) return undefined
      const parsed: unknown = JSON.parse(raw)
      return isCachedResponse(parsed) ? parsed : undefined
    } catch (error) {
      this.failed(error)
      return undefined
    }
  }

  async set(key: string, response: CachedResponse): Promise<boolean> {
    if (this.current !== 'up') return false
    const { similarity: _similarity, ...stored } = response
    try {
      await this.client.set(
        this.options.prefix + key,
        JSON.stringify(stored),
        'PX',
        Math.max(1, this.options.ttlMs),
      )
      return true
    } catch (error) {
      this.failed(error)
      return false
    }
  }

  /** Delete every entry under the prefix; returns how many. */
  async clear(): Promise<number> {
    if (this.current !== 'up') return 0
    let removed = 0
    try {
      let cursor = '0'
      do {
        const [next, keys] = await this.client.scan(cursor, 'MATCH', `${this.options.prefix}*`, 'COUNT', 500)
        cursor = next
        if (keys.length > 0) removed += await this.client.unlink(...keys)
      } while (cursor !== '0')
    } catch (error) {
      this.failed(error)
    }
    return removed
  }

  async close(): Promise<void> {
    this.closed = true
    this.client.disconnect()
  }

  private failed(error: unknown): void {
    const message = error instanceof Error ? error.message : String(error)
    // A command timeout on a live connection is not an outage; a dead socket shows up as 'close'.
    if (this.client.status !== 'ready') this.transition('down', message)
  }

  private transition(status: RedisStatus, error: string | undefined): void {
    if (this.closed) return
    this.current = status
    if (this.reported === status) return
    const wasReported = this.reported !== undefined
    this.reported = status
    this.options.onStatus?.(status, error)
    const where = redactUrl(this.options.url)
    if (status === 'down') {
      this.options.log?.(
        'warn',
        `cache: Redis at ${where} is unreachable (${error ?? 'unknown error'}); serving from memory only`,
      )
    } else if (wasReported) {
      this.options.log?.('info', `cache: Redis at ${where} is back; the shared tier is in use again`)
    }
  }
}
