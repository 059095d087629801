/**
 * Hot reload of velo.yaml for `velo serve`: on SIGHUP, or when the file changes, read and validate
 * it again and hand it to the server, which swaps it in for new requests while in-flight ones
 * finish on the old one. A file that does not load (bad YAML, a bad field, keys removed while
 * listening beyond loopback) changes nothing: velo says why and goes on with the config it has.
 */
import { createHash } from 'node:crypto'
import { type FSWatcher, watch } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { basename, dirname } from 'node:path'
import { loadConfig } from '../core/config/load.js'
import type { VeloConfig } from '../core/config/schema.js'
import { errorMessage } from '../core/errors.js'
import type { Logger } from './logging.js'

export interface ReloadResult {
  /** Config sections now in effect (`auth`, `upstreams`, `server.cors`, ...). */
  applied: string[]
  /** Changed sections that only a restart applies (`server.port`, `cache`, ...). */
  needsRestart: string[]
}

export interface Reloadable {
  reload(next: VeloConfig): Promise<ReloadResult>
}

export type ReloadOutcome = ({ ok: true } & ReloadResult) | { ok: false; error: string }

export interface ConfigWatchOptions {
  /** The file given with --config; the default location when undefined. */
  file: string | undefined
  /** The file's config made effective (flags applied, exposure checked); throws when it may not apply. */
  prepare(config: VeloConfig): VeloConfig
  server: Reloadable
  logger: Logger
  env?: NodeJS.ProcessEnv
  /** Watch the file for changes (default true); SIGHUP always reloads. */
  watchFile?: boolean
  /** Wait this long after a change for the editor to finish writing (default 200 ms). */
  debounceMs?: number
  onReload?: (outcome: ReloadOutcome) => void
}

export interface ConfigWatch {
  /** Reload now (what SIGHUP does). */
  reload(): Promise<ReloadOutcome>
  close(): void
}

async function digestOf(file: string | undefined): Promise<string | undefined> {
  if (file === undefined) return undefined
  try {
    return createHash('sha256')
      .update(await readFile(file))
      .digest('hex')
  } catch {
    return undefined
  }
}

export function watchConfig(options: ConfigWatchOptions): ConfigWatch {
  const { logger } = options
  let running: Promise<ReloadOutcome> | undefined
  let again = false
  let lastDigest: string | undefined
  let watcher: FSWatcher | undefined
  let timer: NodeJS.Timeout | undefined
  let closed = false
  let watchedFile = options.file

  const once = async (): Promise<ReloadOutcome> => {
    let outcome: ReloadOutcome
    try {
      const loaded = await loadConfig(options.file, options.env)
      watchedFile = loaded.file ?? watchedFile
      lastDigest = await digestOf(loaded.file)
      const next = options.prepare(loaded.config)
      const result = await options.server.reload(next)
      outcome = { ok: true, ...result }
      logger.info(
        { file: loaded.file ?? null, applied: result.applied, needsRestart: result.needsRestart },
        result.applied.length > 0 ? 'config reloaded' : 'config reloaded: nothing changed',
      )
      if (result.needsRestart.length > 0) {
        logger.warn(
          { needsRestart: result.needsRestart },
          `config: ${result.needsRestart.join(', ')} changed; these take effect after a restart`,
        )
      }
    } catch (error) {
      outcome = { ok: false, error: errorMessage(error) }
      logger.error({ err: outcome.error }, 'config reload failed; still serving the previous config')
    }
    options.onReload?.(outcome)
    return outcome
  }

  // One reload at a time; a trigger while one runs makes one more run after it.
  const reload = (): Promise<ReloadOutcome> => {
    if (running) {
      again = true
      return running
    }
    running = (async () => {
      let outcome = await once()
      while (again && !closed) {
        again = false
        outcome = await once()
      }
      running = undefined
      return outcome
    })()
    return running
  }

  const onSighup = (): void => {
    logger.info('SIGHUP: reloading the config')
    void reload()
  }
  process.on('SIGHUP', onSighup)

  const startWatching = async (): Promise<void> => {
    const file = watchedFile
    if (options.watchFile === false || file === undefined) return
    lastDigest = await digestOf(file)
    if (closed) return
    // Editors save by writing a new file and renaming it over the old: watch the folder, by name.
    try {
      watcher = watch(dirname(file), { persistent: false }, (_event, name) => {
        if (name !== null && name !== basename(file)) return
        if (timer) clearTimeout(timer)
        timer = setTimeout(() => {
          timer = undefined
          void (async () => {
            const digest = await digestOf(file)
            // Saved without a change, or removed mid-save: nothing to do yet.
            if (digest === undefined || digest === lastDigest) return
            await reload()
          })()
        }, options.debounceMs ?? 200)
      })
      watcher.on('error', (error) => logger.warn({ err: error.message }, 'config watch stopped'))
    } catch (error) {
      logger.warn({ err: errorMessage(error) }, 'cannot watch the config file; SIGHUP still reloads it')
    }
  }
  void startWatching()

  return {
    reload,
    close() {
      closed = true
      process.off('SIGHUP', onSighup)
      if (timer) clearTimeout(timer)
      watcher?.close()
    },
  }
}
