import { Flags } from '@oclif/core'

/** Flags several commands share, so they read the same everywhere. */
export const configFlag = Flags.string({
  description: 'config file (default: $XDG_CONFIG_HOME/velo/velo.yaml)',
})
export const modelsDirFlag = Flags.string({
  description: 'a folder of GGUF models (repeatable)',
  multiple: true,
})
