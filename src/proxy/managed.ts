import { Pool, request } from 'undici'
import { type LlamaServer, startLlamaServer } from '../core/engine/llama-server.js'
import { errorMessage, VeloError } from '../core/errors.js'
import { type BackoffPolicy, DEFAULT_BACKOFF, RestartBackoff } from '../core/process/backoff.js'
import { NotReadyError, type SupervisedProcess } from '../core/process/supervise.js'
import type { ModelState } from './status-types.js'

/** A GGUF model velo runs llama-server for, on demand. */
export interface ManagedSpec {
  /** The id clients use: the config key, or the file name without `.gguf`. */
  id: string
  path: string
  /** The model's own llama-server arguments (config `managed.models.<id>.args`). */
  args: string[]
  /** Unload after this long without requests; 0 keeps it loaded. */
  idleTtlMs: number
  aliases: string[]
  source: 'config' | 'models-dir' | 'flag' | 'default'
}

/** A profile's contribution to a managed model's command line. */
export interface ManagedProfile {
  id: string
  args: string[]
}

export interface ManagedOptions {
  /** The llama-server binary; called at each start so an engine installed later is found. */
  resolveServer(): Promise<string>
  /** Arguments every managed model gets (config `managed.args`). */
  baseArgs: string[]
  maxLoaded: number
  startTimeoutMs: number
  /** How long an unload waits for in-flight requests before stopping the process anyway. */
  drainTimeoutMs: number
  /** Waits between restarts after failures (config `managed.restartBackoff`, `managed.restartBackoffMax`). */
  backoff?: Partial<BackoffPolicy>
  host?: string
  env?: NodeJS.ProcessEnv
  profileFor?(spec: ManagedSpec): Promise<ManagedProfile | undefined>
  onChange?(): void
  onCapacity?(model: string, slots: number): void
  log?(level: 'info' | 'warn' | 'error', message: string, fields: Record<string, unknown>): void
}

/** Held while a request uses a loaded model; release exactly once. */
export interface ManagedLease {
  url: string
  pool: Pool
  /** Time spent waiting for the model to load (0 when it was ready). */
  waitedMs: number
  /**
   * Why the server this lease was for is gone (`llama-server for X exited (SIGKILL)`),
   * or undefined while it runs: a request that lost its upstream can say what happened to it.
   */
  exited(): string | undefined
  release(): void
}

export interface ManagedModelStatus {
  id: string
  aliases: string[]
  path: string
  state: ModelState
  url: string | undefined
  /** llama-server's own pid, from spawn on (also while it loads). */
  pid: number | undefined
  inFlight: number
  waiting: number
  slotsTotal: number
  profile: string | undefined
  error: string | undefined
  lastUsedAt: number | undefined
  /** When the idle TTL unloads it (epoch ms), when loaded and idle. */
  expiresAt: number | undefined
  args: string[]
  /** Failed starts and crashes in a row. */
  failures: number
  /** While backing off after failures: when the next start may be tried (epoch ms). */
  retryAt: number | undefined
}

/** Flags that mean the same llama-server setting; a user's spelling wins over a profile's. */
const FLAG_GROUPS = [
  ['-c', '--ctx-size'],
  ['-ngl', '--gpu-layers', '--n-gpu-layers'],
  ['-t', '--threads'],
  ['-tb', '--threads-batch'],
  ['-b', '--batch-size'],
  ['-ub', '--ubatch-size'],
  ['-fa', '--flash-attn'],
  ['-ctk', '--cache-type-k'],
  ['-ctv', '--cache-type-v'],
  ['-np', '--parallel'],
  ['-a', '--alias'],
]

function flagKey(flag: string): string {
  const name = flag.split('=')[0] ?? flag
  return FLAG_GROUPS.find((group) => group.includes(name))?.[0] ?? name
}

function isFlag(token: string): boolean {
  return token.startsWith('-') && !/^-\d/.test(token)
}

/** Split an argument list into flags with their values: `['-c', '4096', '--jinja']` -> two entries. */
function splitArgs(args: string[]): string[][] {
  const entries: string[][] = []
  for (const token of args) {
    const last = entries.at(-1)
    if (isFlag(token) || !last) entries.push([token])
    else last.push(token)
  }
  return entries
}

/**
 * velo's base arguments, then the profile's, then the model's own; a flag set by the user (base or
 * model) drops the profile's value for it, so explicit settings always win.
 */
export function mergeLlamaArgs(base: string[], profile: string[], model: string[]): string[] {
  const userKeys = new Set([...splitArgs(base), ...splitArgs(model)].map((entry) => flagKey(entry[0] ?? '')))
  const fromProfile = splitArgs(profile).filter((entry) => !userKeys.has(flagKey(entry[0] ?? '')))
  return [...base, ...fromProfile.flat(), ...model]
}

class ManagedModel {
  state: ModelState = 'unloaded'
  server: LlamaServer | undefined
  pool: Pool | undefined
  inFlight = 0
  waiting = 0
  lastUsedAt: number | undefined
  loadedAt = 0
  slotsTotal = 0
  profile: string | undefined
  error: string | undefined
  args: string[] = []
  /** The process being started, until it is healthy (so status shows it and shutdown stops it). */
  starting: SupervisedProcess | undefined
  idleTimer: NodeJS.Timeout | undefined
  loading: Promise<void> | undefined
  /** While loading: room was made for it, so it counts against maxLoaded. */
  placed = false
  unloading: Promise<void> | undefined
  drained: (() => void)[] = []
  constructor(
    /** What the next start uses; a config reload may replace it (the running process keeps the old). */
    public spec: ManagedSpec,
    readonly backoff: RestartBackoff,
  ) {}
}

/** Rejects with the signal's reason as soon as it aborts, leaving `promise` to finish on its own. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise
  if (signal.aborted) return Promise.reject(signal.reason)
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort)
        resolve(value)
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(error)
      },
    )
  })
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** The useful part of llama-server's startup failure: the first line and the last lines it wrote. */
function startFailure(id: string, error: unknown): string {
  const lines = errorMessage(error)
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
  const head = lines[0] ?? 'unknown error'
  const tail = lines.slice(1).slice(-2)
  return `managed model ${id} failed to start: ${[head, ...tail].join(' | ')}`
}

/**
 * llama-server processes started on demand, one per model: the first request starts one (later
 * requests wait for it), idle ones stop after their TTL, at most `maxLoaded` run at once (least
 * recently used goes first), and a crashed one is started again on the next request, with backoff.
 */
export class ManagedModels {
  private readonly models = new Map<string, ManagedModel>()
  private readonly backoffPolicy: BackoffPolicy
  private closing = false
  private drainTimeoutMs: number

  constructor(private readonly options: ManagedOptions) {
    this.backoffPolicy = { ...DEFAULT_BACKOFF, ...options.backoff }
    this.drainTimeoutMs = options.drainTimeoutMs
  }

  /** A config reload changed server.shutdownTimeout: later unloads wait this long for requests. */
  setDrainTimeout(ms: number): void {
    this.drainTimeoutMs = ms
  }

  add(spec: ManagedSpec): void {
    if (!this.models.has(spec.id)) {
      this.models.set(spec.id, new ManagedModel(spec, new RestartBackoff(this.backoffPolicy)))
    }
  }

  has(id: string): boolean {
    return this.models.has(id)
  }

  /**
   * A config reload changed or removed a model: stop its process once its requests are done (as an
   * unload does), then start the next one from the new spec, or forget the model.
   */
  async replace(id: string, spec: ManagedSpec | undefined): Promise<void> {
    const model = this.models.get(id)
    if (!model) {
      if (spec) this.add(spec)
      return
    }
    await this.unload(id)
    if (spec) {
      model.spec = spec
      model.backoff.reset()
    } else if (this.models.get(id) === model) {
      this.models.delete(id)
    }
    this.changed()
  }

  specs(): ManagedSpec[] {
    return [...this.models.values()].map((model) => model.spec)
  }

  get size(): number {
    return this.models.size
  }

  private model(id: string): ManagedModel {
    const model = this.models.get(id)
    if (!model) {
      throw new VeloError('VELO_MODEL_NOT_FOUND', `no managed model ${id}`, {
        suggestion: `managed models: ${[...this.models.keys()].join(', ') || 'none'}`,
      })
    }
    return model
  }

  private changed(): void {
    this.options.onChange?.()
  }

  /** Wait until the model runs (starting it if needed) and hold it for one request. */
  async acquire(id: string, signal?: AbortSignal): Promise<ManagedLease> {
    const model = this.model(id)
    const started = performance.now()
    model.waiting++
    if (model.state !== 'ready') this.changed()
    try {
      while (model.state !== 'ready' || !model.server || !model.pool) {
        if (this.closing) {
          throw new VeloError('VELO_OVERLOADED', 'velo is shutting down', { status: 503 })
        }
        if (model.unloading) await untilAborted(model.unloading, signal)
        else await untilAborted(this.startOnce(model), signal)
      }
    } finally {
      model.waiting--
    }
    model.inFlight++
    model.lastUsedAt = Date.now()
    this.clearIdle(model)
    const { server, pool } = { server: model.server, pool: model.pool }
    let released = false
    return {
      url: server.url,
      pool,
      waitedMs: performance.now() - started,
      exited: () => {
        const { exitCode, signalCode } = server.process.child
        if (exitCode === null && signalCode === null) return undefined
        return `llama-server for ${id} exited (${signalCode ?? exitCode})`
      },
      release: () => {
        if (released) return
        released = true
        model.inFlight--
        model.lastUsedAt = Date.now()
        if (model.inFlight === 0) {
          for (const resolve of model.drained.splice(0)) resolve()
          this.armIdle(model)
        }
      },
    }
  }

  /** Start the model now (the TUI's load key): an operator's retry, so it skips the backoff wait. */
  async load(id: string): Promise<void> {
    const model = this.model(id)
    if (model.unloading) await model.unloading
    if (model.state !== 'ready') await this.startOnce(model, true)
  }

  private startOnce(model: ManagedModel, now = false): Promise<void> {
    model.loading ??= this.start(model, now).finally(() => {
      model.loading = undefined
      model.placed = false
      this.changed()
    })
    return model.loading
  }

  private async start(model: ManagedModel, skipBackoff: boolean): Promise<void> {
    const { spec } = model
    const wait = model.backoff.remainingMs(Date.now())
    if (wait > 0 && !skipBackoff) throw this.backingOff(model, wait)
    const previousError = model.error
    model.state = 'loading'
    model.error = undefined
    this.changed()
    try {
      await this.makeRoom(model)
      const serverPath = await this.options.resolveServer()
      const profile = await this.options.profileFor?.(spec)
      const args = mergeLlamaArgs(this.options.baseArgs, profile?.args ?? [], spec.args)
      this.options.log?.('info', `loading ${spec.id}`, { model: spec.id, args })
      const server = await startLlamaServer({
        serverPath,
        model: spec.path,
        alias: spec.id,
        args,
        host: this.options.host,
        env: this.options.env,
        startTimeoutMs: this.options.startTimeoutMs,
        onSpawn: (proc) => {
          model.starting = proc
          this.changed()
        },
      })
      model.starting = undefined
      if (this.closing) {
        await server.stop()
        throw new VeloError('VELO_OVERLOADED', 'velo is shutting down', { status: 503 })
      }
      model.server = server
      model.pool = new Pool(server.url, { connections: 256, keepAliveTimeout: 30_000 })
      model.args = args
      model.profile = profile?.id
      model.loadedAt = Date.now()
      model.slotsTotal = await readTotalSlots(server.url)
      model.state = 'ready'
      this.options.onCapacity?.(spec.id, model.slotsTotal)
      this.options.log?.('info', `loaded ${spec.id}`, {
        model: spec.id,
        url: server.url,
        pid: server.process.pid,
        slots: model.slotsTotal,
      })
      void server.process.exited.then((code) => this.onExit(model, server, code))
      this.armIdle(model)
    } catch (error) {
      model.starting = undefined
      if (this.closing) {
        model.state = 'unloaded'
        model.error = previousError
        throw new VeloError('VELO_OVERLOADED', 'velo is shutting down', { status: 503 })
      }
      model.state = 'failed'
      model.backoff.startFailed(Date.now())
      const own = !(error instanceof VeloError) || error.code === 'VELO_PROCESS_FAILED'
      const message = own ? startFailure(spec.id, error) : error.message
      model.error = message
      this.options.log?.('error', message, { model: spec.id, failures: model.backoff.failures })
      if (!own) throw error
      const timedOut =
        error instanceof VeloError && error.cause instanceof NotReadyError
          ? error.cause.reason === 'timeout'
          : false
      throw new VeloError('VELO_PROCESS_FAILED', message, {
        status: 503,
        suggestion: timedOut
          ? `raise managed.startTimeout in velo.yaml (now ${this.options.startTimeoutMs} ms) if the model needs longer to load`
          : 'check the GGUF file and the model’s llama-server arguments in velo.yaml',
      })
    }
  }

  /** The answer while a model waits out its backoff: 503 with Retry-After, naming the last failure. */
  private backingOff(model: ManagedModel, waitMs: number): VeloError {
    const seconds = Math.max(1, Math.ceil(waitMs / 1000))
    const last = model.error ? `; last: ${model.error}` : ''
    return new VeloError(
      'VELO_PROCESS_FAILED',
      `managed model ${model.spec.id} failed ${model.backoff.failures} times in a row; velo starts it again in ${seconds} s${last}`,
      {
        status: 503,
        retryAfterSeconds: seconds,
        suggestion: 'retry after the Retry-After delay; /velo/status shows the model’s error',
      },
    )
  }

  private onExit(model: ManagedModel, server: LlamaServer, code: number | string): void {
    if (model.server !== server || model.state !== 'ready') return
    const now = Date.now()
    model.server = undefined
    // close, not destroy: requests still on it fail on their own with the connection's error.
    void model.pool?.close().catch(() => undefined)
    model.pool = undefined
    model.state = 'failed'
    model.backoff.crashed(now - model.loadedAt, now)
    const wait = model.backoff.remainingMs(now)
    const when =
      wait > 0 ? `in ${Math.ceil(wait / 1000)} s, at the first request after that` : 'on the next request'
    model.error = `llama-server for ${model.spec.id} exited unexpectedly (${code}); velo starts it again ${when}`
    this.clearIdle(model)
    this.options.log?.('warn', model.error, {
      model: model.spec.id,
      pid: server.process.pid,
      failures: model.backoff.failures,
    })
    this.changed()
  }

  /**
   * Unload least recently used models until starting `model` keeps within maxLoaded. Models that
   * are still loading hold their place: when only they fill maxLoaded, wait for one to be ready and
   * for its waiting requests to get in, then evict it like any other.
   */
  private async makeRoom(model: ManagedModel): Promise<void> {
    for (;;) {
      const others = [...this.models.values()].filter(
        (other) =>
          other !== model && (other.state === 'ready' || (other.state === 'loading' && other.placed)),
      )
      if (others.length < this.options.maxLoaded) {
        // Set before any await: a start that checks after this one sees it.
        model.placed = true
        return
      }
      if (this.closing) return
      const victim = others
        .filter((other) => other.state === 'ready')
        .sort((a, b) => (a.lastUsedAt ?? 0) - (b.lastUsedAt ?? 0))[0]
      if (victim) {
        this.options.log?.('info', `evicting ${victim.spec.id} to load ${model.spec.id}`, {
          model: victim.spec.id,
        })
        await this.unload(victim.spec.id)
        continue
      }
      await Promise.race(others.map((other) => other.loading?.catch(() => undefined)))
      // The loaded model's waiting requests resume in microtasks: let them take their lease (which
      // the unload then drains) before this start may evict it, or two models could evict each
      // other forever without serving a request.
      await new Promise<void>((resolve) => setImmediate(resolve))
    }
  }

  /** Stop a model's process after its in-flight requests finish (bounded by the drain timeout). */
  async unload(id: string): Promise<void> {
    const model = this.model(id)
    if (model.loading) await model.loading.catch(() => undefined)
    if (model.unloading) return model.unloading
    if (model.state !== 'ready') {
      if (model.state === 'failed') {
        // An operator's unload clears the failure: the next request tries at once.
        model.state = 'unloaded'
        model.backoff.reset()
        this.changed()
      }
      return
    }
    model.state = 'unloading'
    this.clearIdle(model)
    this.changed()
    model.unloading = (async () => {
      if (model.inFlight > 0) {
        await Promise.race([
          new Promise<void>((resolve) => model.drained.push(resolve)),
          sleep(this.drainTimeoutMs),
        ])
      }
      const server = model.server
      const pool = model.pool
      model.server = undefined
      model.pool = undefined
      model.backoff.ran(Date.now() - model.loadedAt)
      await pool?.destroy()
      await server?.stop()
      model.state = 'unloaded'
      model.slotsTotal = 0
      this.options.log?.('info', `unloaded ${id}`, { model: id })
    })().finally(() => {
      model.unloading = undefined
      this.changed()
    })
    return model.unloading
  }

  private armIdle(model: ManagedModel): void {
    this.clearIdle(model)
    const ttl = model.spec.idleTtlMs
    if (ttl <= 0 || this.closing) return
    model.idleTimer = setTimeout(() => {
      model.idleTimer = undefined
      if (model.inFlight === 0 && model.waiting === 0 && model.state === 'ready') {
        this.options.log?.('info', `${model.spec.id} idle for ${ttl} ms`, { model: model.spec.id })
        void this.unload(model.spec.id)
      }
    }, ttl)
    model.idleTimer.unref()
  }

  private clearIdle(model: ManagedModel): void {
    if (model.idleTimer) clearTimeout(model.idleTimer)
    model.idleTimer = undefined
  }

  status(): ManagedModelStatus[] {
    const now = Date.now()
    return [...this.models.values()].map((model) => ({
      id: model.spec.id,
      aliases: model.spec.aliases,
      path: model.spec.path,
      state: model.state,
      url: model.server?.url,
      pid: model.server?.process.pid ?? model.starting?.pid,
      inFlight: model.inFlight,
      waiting: model.waiting,
      slotsTotal: model.slotsTotal,
      profile: model.profile,
      error: model.error,
      lastUsedAt: model.lastUsedAt,
      expiresAt:
        model.state === 'ready' && model.inFlight === 0 && model.spec.idleTtlMs > 0
          ? (model.lastUsedAt ?? model.loadedAt) + model.spec.idleTtlMs
          : undefined,
      args: model.args,
      failures: model.backoff.failures,
      retryAt:
        model.state === 'failed' && model.backoff.remainingMs(now) > 0
          ? now + model.backoff.remainingMs(now)
          : undefined,
    }))
  }

  /** Stop every process (velo is exiting); no new loads start afterwards. */
  async stopAll(): Promise<void> {
    this.closing = true
    await Promise.all(
      [...this.models.values()].map(async (model) => {
        this.clearIdle(model)
        // A model still loading is not waited for (that can take minutes): its process goes now.
        await model.starting?.stop(3000)
        await model.loading?.catch(() => undefined)
        const server = model.server
        model.server = undefined
        await model.pool?.destroy()
        model.pool = undefined
        model.state = 'unloaded'
        await server?.process.stop(3000)
      }),
    )
  }
}

/** llama-server's parallel slots, from /props (1 when it does not say). */
async function readTotalSlots(url: string): Promise<number> {
  try {
    const response = await request(`${url}/props`, { headersTimeout: 2000, bodyTimeout: 2000 })
    const body = (await response.body.json()) as { total_slots?: unknown }
    return typeof body.total_slots === 'number' && body.total_slots > 0 ? body.total_slots : 1
  } catch {
    return 1
  }
}
