import { homedir } from 'node:os'
import { join } from 'node:path'

/** Where velo keeps configuration (profiles live below it). `VELO_HOME` overrides XDG for both. */
export function configDir(env: NodeJS.ProcessEnv = process.env): string {
  const veloHome = env['VELO_HOME']
  if (veloHome) return join(veloHome, 'config')
  return join(env['XDG_CONFIG_HOME'] || join(homedir(), '.config'), 'velo')
}

/** Where velo keeps rebuildable things: engine builds, synthetic models, downloads. */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const veloHome = env['VELO_HOME']
  if (veloHome) return join(veloHome, 'cache')
  return join(env['XDG_CACHE_HOME'] || join(homedir(), '.cache'), 'velo')
}

export function profilesDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(configDir(env), 'profiles')
}

export function defaultConfigFile(env: NodeJS.ProcessEnv = process.env): string {
  return join(configDir(env), 'velo.yaml')
}

export function expandHome(path: string): string {
  return path === '~' || path.startsWith('~/') ? join(homedir(), path.slice(1)) : path
}
