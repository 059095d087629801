import { VeloCommand } from '../../base-command.js'
import { loadConfig } from '../../core/config/load.js'
import { type ResolvedEngine, requireEngine } from '../../core/engine/resolve.js'
import { configFlag } from '../../flags.js'

export default class EnginePath extends VeloCommand {
  static override description =
    'Print the llama-server velo will use: engine.llamaServer from config, else one on PATH, else velo’s build'
  static override enableJsonFlag = true
  static override flags = { config: configFlag }

  async run(): Promise<ResolvedEngine> {
    const { flags } = await this.parse(EnginePath)
    const { config } = await loadConfig(flags.config)
    const engine = await requireEngine({ configured: config.engine.llamaServer })
    if (!this.jsonEnabled()) this.log(engine.serverPath)
    return engine
  }
}
