import { Flags } from '@oclif/core'
import { VeloCommand } from '../../base-command.js'
import { type InstallResult, installEngine } from '../../core/engine/install.js'
import { createProgress } from '../../ui/progress.js'

export default class EngineInstall extends VeloCommand {
  static override description =
    'Build llama-server and llama-bench for this machine from the llama.cpp source that node-llama-cpp ships (cached by tag)'
  static override examples = [
    '<%= config.bin %> engine install',
    '<%= config.bin %> engine install --force --jobs 4',
  ]
  static override enableJsonFlag = true
  static override flags = {
    force: Flags.boolean({ description: 'rebuild even when a cached build exists', default: false }),
    cuda: Flags.boolean({ description: 'build with CUDA (default: when nvcc is on PATH)', allowNo: true }),
    jobs: Flags.integer({ description: 'parallel compile jobs (default: CPU count)', min: 1 }),
  }

  async run(): Promise<InstallResult> {
    const { flags } = await this.parse(EngineInstall)
    const progress = createProgress()
    const result = await installEngine({
      force: flags.force,
      cuda: flags.cuda,
      jobs: flags.jobs,
      onProgress: ({ message, percent }) => progress.update(message, percent),
    })
    progress.done(
      result.cached
        ? `llama.cpp ${result.tag} (${result.variant}) already built, reused the cache in ${result.seconds.toFixed(1)}s`
        : `built llama.cpp ${result.tag} (${result.variant}) in ${result.seconds.toFixed(0)}s`,
    )
    if (!this.jsonEnabled()) this.log(result.serverPath)
    return result
  }
}
