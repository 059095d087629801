import { Args } from '@oclif/core'
import { VeloCommand } from '../../base-command.js'
import { renderProfile } from '../../core/profiles/render.js'
import { getProfile, type StoredProfile } from '../../core/profiles/store.js'

export default class ProfilesShow extends VeloCommand {
  static override description =
    'Show one profile: model, machine, goal, parameters and the measurements behind them'
  static override examples = ['<%= config.bin %> profiles show velo-small-1a2b3c4d-5e6f7a8b']
  static override enableJsonFlag = true
  static override args = {
    id: Args.string({ required: true, description: 'profile id (or a unique prefix, or the model name)' }),
  }

  async run(): Promise<StoredProfile> {
    const { args } = await this.parse(ProfilesShow)
    const stored = await getProfile(args.id)
    if (!this.jsonEnabled()) this.log(renderProfile(stored))
    return stored
  }
}
