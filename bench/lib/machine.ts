import { readFile } from 'node:fs/promises'
import { cpus, loadavg, release, totalmem } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import { findCachedBuild } from '../../src/core/engine/install.js'
import { engineVersion, resolveEngine } from '../../src/core/engine/resolve.js'
import { PORTKEY_DIR, REPO } from './services.js'

export interface MachineInfo {
  cpu: string
  cores: number
  ramGiB: number
  os: string
  node: string
  llamaCpp: string
  portkey: string
  velo: string
  /** 1-minute load average when the run started (other work on the machine skews the numbers). */
  loadAtStart: number
}

async function packageVersion(dir: string): Promise<string | undefined> {
  try {
    const parsed = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as { version?: unknown }
    return typeof parsed.version === 'string' ? parsed.version : undefined
  } catch {
    return undefined
  }
}

async function llamaCppVersion(): Promise<string> {
  const engine = await resolveEngine().catch(() => undefined)
  if (!engine) return 'not installed (velo engine install)'
  const build = await findCachedBuild().catch(() => undefined)
  const version = await engineVersion(engine.serverPath)
  const tag = build && build.serverPath === engine.serverPath ? `${build.tag}, ` : ''
  return `${tag}${version.version ?? '?'}${version.commit ? ` (${version.commit})` : ''}`
}

async function veloVersion(): Promise<string> {
  const version = (await packageVersion(REPO)) ?? '?'
  const commit = await execa('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO, reject: false })
  const dirty = await execa('git', ['status', '--porcelain', '--untracked-files=no'], {
    cwd: REPO,
    reject: false,
  })
  if (commit.exitCode !== 0) return version
  return `${version} (${commit.stdout.trim()}${dirty.stdout.trim() ? ', uncommitted changes' : ''})`
}

export async function machineInfo(): Promise<MachineInfo> {
  const [llamaCpp, portkey, velo] = await Promise.all([
    llamaCppVersion(),
    packageVersion(PORTKEY_DIR),
    veloVersion(),
  ])
  return {
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    cores: cpus().length,
    ramGiB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    os: `${process.platform} ${release()}`,
    node: process.version,
    llamaCpp,
    portkey: portkey ?? 'not installed',
    velo,
    loadAtStart: loadavg()[0] ?? 0,
  }
}
