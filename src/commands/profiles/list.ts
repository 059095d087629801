import { VeloCommand } from '../../base-command.js'
import { renderProfileList } from '../../core/profiles/render.js'
import { listProfiles, type ProfileList } from '../../core/profiles/store.js'

export default class ProfilesList extends VeloCommand {
  static override description =
    'List the optimization profiles velo optimize wrote (corrupt files are named and skipped)'
  static override examples = ['<%= config.bin %> profiles list', '<%= config.bin %> profiles list --json']
  static override enableJsonFlag = true

  async run(): Promise<ProfileList> {
    await this.parse(ProfilesList)
    const list = await listProfiles()
    for (const skipped of list.skipped) this.logToStderr(`velo: skipped ${skipped.reason}`)
    if (!this.jsonEnabled()) this.log(renderProfileList(list))
    return list
  }
}
