import { Flags } from '@oclif/core'
import { VeloCommand } from '../base-command.js'
import { loadConfig } from '../core/config/load.js'
import { detectMachine } from '../core/detect/index.js'
import { renderMachineReport } from '../core/detect/render.js'
import type { MachineReport } from '../core/detect/types.js'
import { configFlag, modelsDirFlag } from '../flags.js'
import { delayedProgress } from '../ui/delayed-progress.js'
import { createProgress } from '../ui/progress.js'

/** Progress appears only when probing takes longer than this, so a quick run prints nothing extra. */
const PROGRESS_AFTER_MS = 300

export default class Detect extends VeloCommand {
  static override description =
    'Show CPU, memory, GPUs, memory bandwidth, backends and models on this machine, and which models fit'
  static override examples = [
    '<%= config.bin %> detect',
    '<%= config.bin %> detect --no-measure --json',
    '<%= config.bin %> detect --models-dir ~/models --port 9090',
  ]
  static override enableJsonFlag = true
  static override flags = {
    measure: Flags.boolean({
      default: true,
      allowNo: true,
      description: 'measure main-memory bandwidth (at most 2 s); --no-measure skips it',
    }),
    'models-dir': modelsDirFlag,
    'ollama-url': Flags.string({
      description: 'the Ollama to ask (default: $OLLAMA_HOST or http://127.0.0.1:11434)',
    }),
    port: Flags.integer({
      multiple: true,
      min: 1,
      max: 65535,
      description:
        'also look for a running llama-server on this port (repeatable; 8080-8085 and 8012 always)',
    }),
    'velo-url': Flags.string({
      description: 'where to look for a running velo (default: http://127.0.0.1:8000)',
    }),
    config: configFlag,
  }

  async run(): Promise<MachineReport> {
    const { flags } = await this.parse(Detect)
    const { config } = await loadConfig(flags.config)
    const progress = delayedProgress(createProgress(), PROGRESS_AFTER_MS)
    try {
      const report = await detectMachine({
        measureBandwidth: flags.measure,
        modelsDirs: flags['models-dir'] ?? [],
        configuredModelsDirs: config.managed.modelsDirs,
        ollamaUrl: flags['ollama-url'],
        ports: flags.port ?? [],
        veloUrl: flags['velo-url'],
        configuredServer: config.engine.llamaServer,
        onProgress: (message) => progress.update(message),
      })
      progress.done(`probed in ${(report.durationMs / 1000).toFixed(1)} s`)
      if (!this.jsonEnabled()) this.log(renderMachineReport(report))
      return report
    } finally {
      progress.stop()
    }
  }
}
