import { VeloCommand } from '../../base-command.js'
import { loadConfig } from '../../core/config/load.js'
import {
  type EngineVersion,
  engineVersion,
  type ResolvedEngine,
  requireEngine,
} from '../../core/engine/resolve.js'
import { configFlag } from '../../flags.js'

export default class EngineVersionCommand extends VeloCommand {
  static override description = 'Print the version of the llama-server velo will use'
  static override enableJsonFlag = true
  static override flags = { config: configFlag }

  async run(): Promise<ResolvedEngine & EngineVersion> {
    const { flags } = await this.parse(EngineVersionCommand)
    const { config } = await loadConfig(flags.config)
    const engine = await requireEngine({ configured: config.engine.llamaServer })
    const version = await engineVersion(engine.serverPath)
    if (!this.jsonEnabled()) {
      this.log(`llama-server ${version.version ?? 'unknown'}${version.commit ? ` (${version.commit})` : ''}`)
      this.log(`${engine.serverPath} [${engine.source}]`)
    }
    return { ...engine, ...version }
  }
}
