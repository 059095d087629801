import { Args } from '@oclif/core'
import { VeloCommand } from '../../base-command.js'
import { removeProfile } from '../../core/profiles/store.js'

export default class ProfilesRm extends VeloCommand {
  static override description = 'Delete a profile'
  static override examples = ['<%= config.bin %> profiles rm velo-small-1a2b3c4d-5e6f7a8b']
  static override enableJsonFlag = true
  static override args = {
    id: Args.string({ required: true, description: 'profile id (or a unique prefix, or the model name)' }),
  }

  async run(): Promise<{ removed: string }> {
    const { args } = await this.parse(ProfilesRm)
    const removed = await removeProfile(args.id)
    if (!this.jsonEnabled()) this.log(`removed ${removed}`)
    return { removed }
  }
}
