/**
 * The rate-limit buckets in Redis, so that every velo instance on one Redis enforces one limit per
 * key. Each decision is one Lua script (read, refill, take, write: atomic), timed by Redis's own
 * clock so instances with skewed clocks still agree. The arithmetic is buckets.ts's.
 *
 * Redis is a helper here too: while it is down, limits fall back to this instance's memory (said
 * once in the log), and go back to the shared buckets when it answers again.
 */
import { Redis } from 'ioredis'
import { errorMessage } from '../../core/errors.js'
import { type KeyLimits, type LimitDecision, MemoryRateLimiter, type RateLimiter } from './buckets.js'

const CLOCK_AND_LOAD = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function load(key, cap)
  local v = redis.call('HMGET', key, 'l', 't')
  local level = tonumber(v[1])
  local at = tonumber(v[2])
  if level == nil or at == nil then return cap end
  return math.min(cap, level + math.max(0, now - at) * cap / 60000)
end
local function save(key, level)
  redis.call('HSET', key, 'l', tostring(level), 't', now)
  redis.call('PEXPIRE', key, 120000)
end
`

/** KEYS: request bucket, token bucket. ARGV: rpm, tpm (0 = no such limit). */
const ADMIT = `${CLOCK_AND_LOAD}
local rpm = tonumber(ARGV[1])
local tpm = tonumber(ARGV[2])
local limit = ''
local wait = 0
local rl = -1
local tl = -1
if rpm > 0 then
  rl = load(KEYS[1], rpm)
  if rl < 1 then
    limit = 'rpm'
    wait = math.ceil((1 - rl) * 60000 / rpm)
  end
end
if tpm > 0 then
  tl = load(KEYS[2], tpm)
  if tl <= 0 then
    local w = math.ceil((1 - tl) * 60000 / tpm)
    if w > wait then
      limit = 'tpm'
      wait = w
    end
  end
end
if limit == '' and rpm > 0 then rl = rl - 1 end
if rpm > 0 then save(KEYS[1], rl) end
if tpm > 0 then save(KEYS[2], tl) end
return {limit, wait, tostring(rl), tostring(tl)}
`

/** KEYS: token bucket. ARGV: tpm, tokens. */
const CHARGE = `${CLOCK_AND_LOAD}
local cap = tonumber(ARGV[1])
local level = math.max(-cap, load(KEYS[1], cap) - tonumber(ARGV[2]))
save(KEYS[1], level)
return tostring(level)
`

export interface RedisRateLimiterOptions {
  url: string
  prefix: string
  log?: (level: 'info' | 'warn', message: string) => void
}

export class RedisRateLimiter implements RateLimiter {
  private readonly client: Redis
  private readonly local = new MemoryRateLimiter()
  private usingRedis: boolean | undefined
  private readonly ready: Promise<void>

  constructor(private readonly options: RedisRateLimiterOptions) {
    this.client = new Redis(options.url, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: 2000,
      commandTimeout: 1000,
      retryStrategy: (times) => Math.min(times * 200, 2000),
    })
    this.client.on('error', () => {
      // Reported through `transition` when a decision falls back; ioredis keeps reconnecting.
    })
    this.ready = new Promise<void>((resolve) => {
      const done = (): void => {
        this.client.off('ready', done)
        this.client.off('error', done)
        resolve()
      }
      this.client.once('ready', done)
      this.client.once('error', done)
    })
  }

  get store(): 'memory' | 'redis' {
    return this.client.status === 'ready' ? 'redis' : 'memory'
  }

  private transition(shared: boolean, reason?: string): void {
    if (this.usingRedis === shared) return
    this.usingRedis = shared
    if (shared) this.options.log?.('info', 'rate limits shared through Redis')
    else
      this.options.log?.(
        'warn',
        `Redis for rate limits is unavailable (${reason ?? 'not connected'}): limits hold per velo instance until it answers`,
      )
  }

  private key(id: string, kind: 'rpm' | 'tpm'): string {
    return `${this.options.prefix}${id}:${kind}`
  }

  async admit(id: string, limits: KeyLimits): Promise<LimitDecision> {
    await this.ready
    if (this.client.status !== 'ready') {
      this.transition(false)
      return this.local.admitNow(id, limits)
    }
    try {
      const reply = (await this.client.eval(
        ADMIT,
        2,
        this.key(id, 'rpm'),
        this.key(id, 'tpm'),
        limits.rpm ?? 0,
        limits.tpm ?? 0,
      )) as [string, number, string, string]
      this.transition(true)
      const [limit, wait, requests, tokens] = reply
      return {
        allowed: limit === '',
        retryAfterMs: Number(wait),
        limit: limit === 'rpm' || limit === 'tpm' ? limit : undefined,
        remainingRequests: limits.rpm === undefined ? undefined : Math.max(0, Math.floor(Number(requests))),
        remainingTokens: limits.tpm === undefined ? undefined : Math.max(0, Math.floor(Number(tokens))),
      }
    } catch (error) {
      this.transition(false, errorMessage(error))
      return this.local.admitNow(id, limits)
    }
  }

  async charge(id: string, tpm: number, tokens: number): Promise<void> {
    if (this.client.status !== 'ready') {
      this.local.chargeNow(id, tpm, tokens)
      return
    }
    try {
      await this.client.eval(CHARGE, 1, this.key(id, 'tpm'), tpm, tokens)
    } catch (error) {
      this.transition(false, errorMessage(error))
      this.local.chargeNow(id, tpm, tokens)
    }
  }

  async close(): Promise<void> {
    this.client.disconnect()
    await this.local.close()
  }
}
