import { Args, Flags } from '@oclif/core'
import { VeloCommand } from '../../base-command.js'
import { EXPORT_FORMATS, type ExportFormat, exportProfile } from '../../core/profiles/export.js'
import { getProfile } from '../../core/profiles/store.js'

export default class ProfilesExport extends VeloCommand {
  static override description =
    'Print a profile as an Ollama Modelfile, llama-server arguments, or environment variables'
  static override examples = [
    '<%= config.bin %> profiles export velo-small-1a2b3c4d-5e6f7a8b --format llama-server',
    '<%= config.bin %> profiles export llama3.2:latest --format modelfile > Modelfile',
  ]
  static override enableJsonFlag = true
  static override args = {
    id: Args.string({ required: true, description: 'profile id (or a unique prefix, or the model name)' }),
  }
  static override flags = {
    format: Flags.string({
      options: [...EXPORT_FORMATS],
      default: 'llama-server',
      description: 'output format',
    }),
  }

  async run(): Promise<{ id: string; format: ExportFormat; text: string }> {
    const { args, flags } = await this.parse(ProfilesExport)
    const { profile } = await getProfile(args.id)
    const format = flags.format as ExportFormat
    const text = exportProfile(profile, format)
    if (!this.jsonEnabled()) process.stdout.write(text)
    return { id: profile.id, format, text }
  }
}
