import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { execa } from 'execa'
import which from 'which'
import { VeloError } from '../errors.js'
import { findCachedBuild } from './install.js'

export type EngineSourceKind = 'config' | 'path' | 'velo'

export interface ResolvedEngine {
  serverPath: string
  /** llama-bench beside llama-server, when there is one. */
  benchPath: string | undefined
  source: EngineSourceKind
}

export interface ResolveOptions {
  /** A llama-server path from config (`engine.llamaServer`); wins over everything. */
  configured?: string | undefined
  env?: NodeJS.ProcessEnv
}

function siblingBench(serverPath: string): string | undefined {
  const bench = join(dirname(serverPath), 'llama-bench')
  return existsSync(bench) ? bench : undefined
}

/** The llama-server velo will run: configured, else one on PATH, else velo's own build. */
export async function resolveEngine(options: ResolveOptions = {}): Promise<ResolvedEngine | undefined> {
  const env = options.env ?? process.env
  if (options.configured) {
    if (!existsSync(options.configured)) {
      throw new VeloError(
        'VELO_ENGINE_NOT_FOUND',
        `configured llama-server ${options.configured} does not exist`,
        {
          suggestion: 'fix engine.llamaServer in velo.yaml or remove it to use velo’s own build',
        },
      )
    }
    return { serverPath: options.configured, benchPath: siblingBench(options.configured), source: 'config' }
  }
  const onPath = await which('llama-server', { nothrow: true, path: env['PATH'] ?? '' })
  if (onPath) return { serverPath: onPath, benchPath: siblingBench(onPath), source: 'path' }
  const built = await findCachedBuild(env)
  if (built) return { serverPath: built.serverPath, benchPath: built.benchPath, source: 'velo' }
  return undefined
}

export async function requireEngine(options: ResolveOptions = {}): Promise<ResolvedEngine> {
  const engine = await resolveEngine(options)
  if (!engine) {
    throw new VeloError('VELO_ENGINE_NOT_FOUND', 'no llama-server found (config, PATH or velo’s build)', {
      suggestion: 'run `velo engine install` to build one',
    })
  }
  return engine
}

export interface EngineVersion {
  version: string | undefined
  commit: string | undefined
  raw: string
}

/** `llama-server --version` prints e.g. `version: 7000 (de3ff81)` and the compiler on stderr. */
export async function engineVersion(serverPath: string): Promise<EngineVersion> {
  const result = await execa(serverPath, ['--version'], { reject: false, all: true, timeout: 15_000 })
  const raw = (result.all ?? '').trim()
  const match = /version:\s*(\S+)(?:\s*\((?:build \d+, commit )?([0-9a-f]+)\))?/.exec(raw)
  return { version: match?.[1], commit: match?.[2], raw }
}
