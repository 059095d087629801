import { Flags } from '@oclif/core'
import { VeloCommand } from '../base-command.js'
import type { VeloStatus } from '../proxy/status-types.js'
import { canDrawLive } from '../ui/terminal.js'
import { fetchVeloStatus, runTop } from '../ui/top.js'

export default class Top extends VeloCommand {
  static override description =
    'Attach to a running velo serve and show its live dashboard: models, queues, tokens/s, recent requests, health'
  static override examples = [
    '<%= config.bin %> top',
    '<%= config.bin %> top --url http://gpu-box:8000 --api-key $VELO_ADMIN_KEY',
    '<%= config.bin %> top --no-tui --interval 5s        # one summary line every 5 seconds',
    '<%= config.bin %> top --json                        # one /velo/status snapshot',
  ]
  static override enableJsonFlag = true
  static override flags = {
    url: Flags.string({ default: 'http://127.0.0.1:8000', description: 'the running velo' }),
    'api-key': Flags.string({
      env: 'VELO_API_KEY',
      description: 'an admin key, when velo has API keys configured',
    }),
    tui: Flags.boolean({
      default: true,
      allowNo: true,
      description:
        'draw the live view on a terminal (--no-tui: summary lines; also when not a TTY or CI is set)',
    }),
    interval: Flags.string({
      default: '1s',
      description: 'time between summary lines without the live view',
    }),
    count: Flags.integer({
      min: 1,
      description: 'print this many summary lines, then exit (without the live view)',
    }),
  }

  async run(): Promise<VeloStatus | undefined> {
    const { flags } = await this.parse(Top)
    if (this.jsonEnabled()) return fetchVeloStatus(flags.url, flags['api-key'])
    await runTop({
      url: flags.url,
      apiKey: flags['api-key'],
      mode: flags.tui && canDrawLive() ? 'live' : 'plain',
      interval: flags.interval,
      count: flags.count,
    })
    return undefined
  }
}
