import { Flags } from '@oclif/core'
import { stringify } from 'yaml'
import { VeloCommand } from '../../base-command.js'
import { createKey } from '../../proxy/auth/keys.js'

export interface CreatedKey {
  /** The key to give the client; velo keeps only its hash. */
  key: string
  /** The entry for auth.keys in velo.yaml. */
  entry: {
    key: string
    name?: string
    scope: 'user' | 'admin'
    models?: string[]
    rpm?: number
    tpm?: number
  }
}

export default class KeysCreate extends VeloCommand {
  static override description =
    'Make a new API key for velo serve: prints the key once and the auth.keys entry (with only its SHA-256) for velo.yaml'
  static override examples = [
    '<%= config.bin %> keys create --name alice --rpm 60 --tpm 100000',
    '<%= config.bin %> keys create --name ops --scope admin',
    '<%= config.bin %> keys create --name ci --models "qwen*" --models llama3.2',
  ]
  static override enableJsonFlag = true
  static override flags = {
    name: Flags.string({ description: 'who the key is for (shown in logs, metrics and limits)' }),
    scope: Flags.string({
      options: ['user', 'admin'],
      default: 'user',
      description: 'admin may also call /velo/* (status, unload, cache)',
    }),
    models: Flags.string({
      multiple: true,
      description: 'models the key may use (names or patterns with *)',
    }),
    rpm: Flags.integer({ min: 1, description: 'requests per minute' }),
    tpm: Flags.integer({ min: 1, description: 'prompt plus completion tokens per minute' }),
  }

  async run(): Promise<CreatedKey> {
    const { flags } = await this.parse(KeysCreate)
    const { key, hashed } = createKey()
    const entry: CreatedKey['entry'] = { key: hashed, scope: flags.scope === 'admin' ? 'admin' : 'user' }
    if (flags.name !== undefined) entry.name = flags.name
    if (flags.models !== undefined) entry.models = flags.models
    if (flags.rpm !== undefined) entry.rpm = flags.rpm
    if (flags.tpm !== undefined) entry.tpm = flags.tpm
    if (!this.jsonEnabled()) {
      this.log(`key: ${key}`)
      this.log('(shown once: velo keeps only its hash)\n')
      this.log('add to velo.yaml:\n')
      this.log(stringify({ auth: { keys: [entry] } }).trimEnd())
    }
    return { key, entry }
  }
}
