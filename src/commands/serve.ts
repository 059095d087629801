import { join } from 'node:path'
import { Flags } from '@oclif/core'
import { VeloCommand } from '../base-command.js'
import { loadConfig } from '../core/config/load.js'
import { cacheDir } from '../core/paths.js'
import { configFlag, modelsDirFlag } from '../flags.js'
import { createLogger, type Logger } from '../proxy/logging.js'
import { storeProfiles } from '../proxy/profiles.js'
import { watchConfig } from '../proxy/reload.js'
import { applyServeFlags, checkExposure, type ServeFlags, startServe } from '../proxy/serve.js'
import type { VeloStatus } from '../proxy/status-types.js'
import { createProgress } from '../ui/progress.js'
import { runDashboard } from '../ui/run-dashboard.js'
import { createPollingSource } from '../ui/source.js'
import { canDrawLive } from '../ui/terminal.js'

export interface ServeResult {
  listen: string
  uptimeSeconds: number
  totals: VeloStatus['totals']
}

export default class Serve extends VeloCommand {
  static override description =
    'Serve an OpenAI- and Ollama-compatible API in front of Ollama, OpenAI-compatible servers and llama-server processes velo starts on demand'
  static override examples = [
    '<%= config.bin %> serve',
    '<%= config.bin %> serve --models-dir ~/models --max-loaded 1 --idle-ttl 5m',
    '<%= config.bin %> serve --upstream http://gpu-box:11434 --no-tui --log-format json',
  ]
  static override enableJsonFlag = true
  static override flags = {
    port: Flags.integer({
      min: 0,
      max: 65535,
      description: 'port to listen on (default 8000; 0 picks a free one)',
    }),
    host: Flags.string({ description: 'address to listen on (default 127.0.0.1)' }),
    config: configFlag,
    upstream: Flags.string({
      multiple: true,
      description: 'an Ollama or OpenAI-compatible server (repeatable; kind probed; with or without /v1)',
    }),
    'models-dir': modelsDirFlag,
    model: Flags.string({
      multiple: true,
      description: 'a GGUF file to serve through a managed llama-server (repeatable)',
    }),
    'max-loaded': Flags.integer({
      min: 1,
      description: 'managed models loaded at once (least recently used unloads first)',
    }),
    'idle-ttl': Flags.string({
      description: 'unload a managed model after this long without requests (e.g. 30s, 10m; 0 never)',
    }),
    tui: Flags.boolean({
      default: true,
      allowNo: true,
      description: 'live dashboard on a terminal; --no-tui prints log lines (the default off a TTY or in CI)',
    }),
    'log-format': Flags.string({
      options: ['json', 'pretty'],
      description:
        'request log lines (default pretty); with the dashboard on, logs are always JSON lines in ~/.cache/velo/logs/serve.log',
    }),
    'insecure-no-auth': Flags.boolean({
      default: false,
      description:
        'allow listening on a non-loopback address (--host 0.0.0.0) with no auth.keys configured: anyone on the network can use velo',
    }),
    'watch-config': Flags.boolean({
      default: true,
      allowNo: true,
      description: 'reload velo.yaml when it changes (SIGHUP reloads it either way)',
    }),
    'detect-ollama': Flags.boolean({
      default: true,
      allowNo: true,
      description:
        'with no upstream configured, use Ollama at $OLLAMA_HOST (or 127.0.0.1:11434) if it answers',
    }),
  }

  async run(): Promise<ServeResult> {
    const { flags } = await this.parse(Serve)
    const loaded = await loadConfig(flags.config)
    const serveFlags: ServeFlags = {
      port: flags.port,
      host: flags.host,
      upstream: flags.upstream,
      modelsDir: flags['models-dir'],
      maxLoaded: flags['max-loaded'],
      idleTtl: flags['idle-ttl'],
      logFormat: flags['log-format'] as 'json' | 'pretty' | undefined,
    }
    const config = applyServeFlags(loaded.config, serveFlags)
    // The same test as every live view (Ink's reading of CI included, or the screen stays blank); a
    // stdin that is not a terminal only turns the keys off.
    const dashboard = flags.tui && !this.jsonEnabled() && canDrawLive()
    const logFile = join(cacheDir(), 'logs', 'serve.log')
    // The dashboard owns the terminal: logs go to a file then; with --json they go to stderr.
    const logger: Logger = dashboard
      ? createLogger({ format: 'json', destination: logFile })
      : createLogger({ format: config.server.logFormat, destination: this.jsonEnabled() ? 2 : 1 })
    const progress = createProgress()
    const server = await startServe({
      config,
      modelFiles: flags.model,
      version: this.config.version,
      logger,
      autoOllama: flags['detect-ollama'],
      insecureNoAuth: flags['insecure-no-auth'],
      profiles: storeProfiles({
        onSkip: (file, reason) => logger.debug({ file, reason }, 'profile skipped'),
      }),
      onStatus: (message, percent) => progress.update(message, percent),
    })
    // SIGHUP or a saved velo.yaml: the new config applies to new requests (docs/serve.md#reloading-the-config).
    const configWatch = watchConfig({
      file: loaded.file ?? flags.config,
      prepare: (next) => {
        const effective = applyServeFlags(next, serveFlags)
        checkExposure(effective, flags['insecure-no-auth'])
        return effective
      },
      server,
      logger,
      watchFile: flags['watch-config'],
    })
    const models = server.catalog.entries().map((entry) => entry.id)
    const banner = `velo serve listening on ${server.url} · ${models.length} model${models.length === 1 ? '' : 's'}: ${models.join(', ') || 'none'}`
    if (dashboard) {
      const source = createPollingSource(() => server.status())
      let pending: NodeJS.Timeout | undefined
      server.onChange(() => {
        pending ??= setTimeout(() => {
          pending = undefined
          source.notify()
        }, 100)
      })
      const handle = runDashboard({ source, actions: server.actions })
      await handle.closed.catch((error: unknown) => logger.error({ err: String(error) }, 'dashboard failed'))
      source.close?.()
      if (pending) clearTimeout(pending)
      this.logToStderr(`velo serve: stopping (logs: ${logFile})`)
    } else {
      logger.info({ listen: server.url, models }, banner)
      await new Promise<void>((resolve) => {
        const stop = (signal: NodeJS.Signals): void => {
          logger.info({ signal }, 'shutting down: finishing in-flight requests')
          // A second signal while draining: stop now.
          process.once('SIGINT', () => process.exit(130))
          process.once('SIGTERM', () => process.exit(143))
          resolve()
        }
        process.once('SIGINT', stop)
        process.once('SIGTERM', stop)
      })
    }
    configWatch.close()
    const status = server.status()
    await server.close()
    logger.info({ requests: status.totals.requests }, 'stopped')
    return { listen: server.url, uptimeSeconds: status.uptimeSeconds, totals: status.totals }
  }
}
