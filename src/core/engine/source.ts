import { existsSync } from 'node:fs'
import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { execa } from 'execa'
import { z } from 'zod'
import { VeloError } from '../errors.js'
import { cacheDir } from '../paths.js'

/**
 * node-llama-cpp ships the llama.cpp source it was built from as a git bundle. Pinning its version
 * pins velo's engine; bumping it is how the engine is upgraded.
 */
export const NODE_LLAMA_CPP_VERSION = '3.22.1'

export interface EngineSource {
  /** The llama.cpp release tag the bundle holds, e.g. `v0.5.0`; the engine cache is keyed by it. */
  tag: string
  /** A checkout of the llama.cpp source. */
  dir: string
}

const infoSchema = z.object({ tag: z.string().min(1) })

export function engineRoot(env: NodeJS.ProcessEnv = process.env): string {
  return join(cacheDir(env), 'engine')
}

/** Fetch the node-llama-cpp package (without installing it or running its scripts) into the cache. */
async function ensurePackage(root: string, log: (line: string) => void): Promise<string> {
  const pkgDir = join(root, 'pkg', `node-llama-cpp-${NODE_LLAMA_CPP_VERSION}`)
  if (existsSync(join(pkgDir, 'llama', 'llama.cpp.info.json'))) return pkgDir
  const staging = `${pkgDir}.partial`
  await rm(staging, { recursive: true, force: true })
  await mkdir(staging, { recursive: true })
  log(`fetching node-llama-cpp@${NODE_LLAMA_CPP_VERSION} from the npm registry (llama.cpp source)`)
  try {
    await execa('npm', ['pack', `node-llama-cpp@${NODE_LLAMA_CPP_VERSION}`, '--pack-destination', staging], {
      cwd: staging,
    })
    const tarball = (await readdir(staging)).find((name) => name.endsWith('.tgz'))
    if (!tarball) throw new Error('npm pack produced no tarball')
    await execa('tar', ['xzf', tarball, '--strip-components=1'], { cwd: staging })
    await rm(join(staging, tarball))
  } catch (error) {
    throw new VeloError('VELO_ENGINE_BUILD_FAILED', `could not fetch node-llama-cpp: ${String(error)}`, {
      suggestion: 'check that npm can reach the registry (npm view node-llama-cpp version)',
      cause: error,
    })
  }
  await rm(pkgDir, { recursive: true, force: true })
  await rename(staging, pkgDir)
  return pkgDir
}

/** Make sure the llama.cpp source is checked out in the cache and say which tag it is. */
export async function ensureEngineSource(
  env: NodeJS.ProcessEnv = process.env,
  log: (line: string) => void = () => {},
): Promise<EngineSource> {
  const root = engineRoot(env)
  const pkgDir = await ensurePackage(root, log)
  const info = infoSchema.parse(
    JSON.parse(await readFile(join(pkgDir, 'llama', 'llama.cpp.info.json'), 'utf8')),
  )
  const dir = join(root, 'src', `llama.cpp-${info.tag}`)
  if (!existsSync(join(dir, 'CMakeLists.txt'))) {
    log(`unpacking llama.cpp ${info.tag}`)
    await rm(dir, { recursive: true, force: true })
    await mkdir(join(root, 'src'), { recursive: true })
    await execa('git', ['clone', '--quiet', join(pkgDir, 'llama', 'gitRelease.bundle'), dir])
  }
  return { tag: info.tag, dir }
}
