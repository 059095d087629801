import { Args, Flags } from '@oclif/core'
import { VeloCommand } from '../base-command.js'
import { loadConfig } from '../core/config/load.js'
import { type QuickChatResult, quickChat } from '../core/quick-chat.js'
import { configFlag } from '../flags.js'
import { createProgress } from '../ui/progress.js'

export default class Run extends VeloCommand {
  static override description =
    'Ask a model one question on velo’s own llama.cpp engine and print the answer with timings (builds the engine and a synthetic model when missing)'
  static override examples = [
    '<%= config.bin %> run',
    '<%= config.bin %> run ~/models/qwen2.5-0.5b-q4_k_m.gguf "Why is the sky blue?"',
  ]
  static override enableJsonFlag = true
  static override args = {
    model: Args.string({ description: 'a GGUF file (default: velo’s tiny synthetic model)' }),
    prompt: Args.string({
      description: 'the question',
      default: 'Write a haiku about fast local inference.',
    }),
  }
  static override flags = {
    'max-tokens': Flags.integer({ default: 64, min: 1, description: 'tokens to generate at most' }),
    config: configFlag,
  }

  async run(): Promise<QuickChatResult> {
    const { args, flags } = await this.parse(Run)
    const { config } = await loadConfig(flags.config)
    const progress = createProgress()
    const result = await quickChat({
      model: args.model,
      prompt: args.prompt,
      maxTokens: flags['max-tokens'],
      configuredServer: config.engine.llamaServer,
      onStatus: (message, percent) => progress.update(message, percent),
    })
    progress.done(`llama-server ready in ${result.loadSeconds.toFixed(1)}s`)
    if (!this.jsonEnabled()) {
      this.log(result.reply.trim())
      this.log('')
      this.log(
        `prompt ${result.promptTokens} tokens at ${result.promptTokensPerSecond.toFixed(0)} t/s · ` +
          `generated ${result.completionTokens} tokens at ${result.generationTokensPerSecond.toFixed(1)} t/s · ` +
          `${result.requestMs.toFixed(0)} ms`,
      )
    }
    return result
  }
}
