import { resolve } from 'node:path'
import { Flags } from '@oclif/core'
import { VeloCommand } from '../../base-command.js'
import { type SynthResult, synthesizeModel } from '../../core/models/synth.js'
import { createProgress } from '../../ui/progress.js'

export default class ModelsSynth extends VeloCommand {
  static override description =
    'Write a synthetic llama-architecture GGUF (random weights, real tokenizer, tool-capable chat template) for tests and benchmarks'
  static override examples = [
    '<%= config.bin %> models synth --size tiny --out velo-tiny.gguf',
    '<%= config.bin %> models synth --size small --out ~/models/velo-small.gguf --seed 7',
  ]
  static override enableJsonFlag = true
  static override flags = {
    size: Flags.string({
      options: ['tiny', 'small'],
      default: 'tiny',
      description: 'tiny ~20M or small ~125M parameters',
    }),
    out: Flags.string({ required: true, description: 'where to write the .gguf file' }),
    seed: Flags.integer({ default: 42, description: 'random seed for the weights' }),
  }

  async run(): Promise<SynthResult> {
    const { flags } = await this.parse(ModelsSynth)
    const progress = createProgress()
    progress.update(`synthesizing ${flags.size} model`)
    const result = await synthesizeModel({
      size: flags.size as 'tiny' | 'small',
      out: resolve(flags.out),
      seed: flags.seed,
      log: (line) => progress.update(line),
    })
    progress.done(
      `wrote ${result.path}: ${(result.parameterCount / 1e6).toFixed(1)}M parameters, ${(result.fileBytes / 1e6).toFixed(1)} MB in ${result.seconds.toFixed(1)}s`,
    )
    return result
  }
}
