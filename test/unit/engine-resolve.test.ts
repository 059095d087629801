import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { engineVersion, requireEngine, resolveEngine } from '../../src/core/engine/resolve.js'
import { VeloError } from '../../src/core/errors.js'

/**
 * Three real candidates on disk: a configured binary, an executable `llama-server` in a folder that
 * stands for PATH, and a finished velo build (engine.json stamp) under a private VELO_HOME, so the
 * user's own cache and PATH never leak in.
 */
let dir: string
let configured: string
let pathDir: string
let onPath: string
let veloHome: string
let built: { serverPath: string; benchPath: string }

async function executable(path: string, versionLine: string): Promise<void> {
  await writeFile(path, `#!/bin/sh\necho "${versionLine}" >&2\n`)
  await chmod(path, 0o755)
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'velo-resolve-'))
  const configDir = join(dir, 'configured')
  await mkdir(configDir)
  configured = join(configDir, 'llama-server')
  await executable(configured, 'version: 1111 (aaaaaaa)')
  await executable(join(configDir, 'llama-bench'), 'bench')

  pathDir = join(dir, 'bin')
  await mkdir(pathDir)
  onPath = join(pathDir, 'llama-server')
  await executable(onPath, 'version: 2222 (bbbbbbb)')

  veloHome = join(dir, 'velo-home')
  const buildDir = join(veloHome, 'cache', 'engine', 'llama.cpp-b9999-cpu')
  const binDir = join(buildDir, 'build', 'bin')
  await mkdir(binDir, { recursive: true })
  built = { serverPath: join(binDir, 'llama-server'), benchPath: join(binDir, 'llama-bench') }
  await executable(built.serverPath, 'version: 3333 (ccccccc)')
  await executable(built.benchPath, 'bench')
  await writeFile(
    join(buildDir, 'engine.json'),
    JSON.stringify({
      tag: 'b9999',
      variant: 'cpu',
      dir: buildDir,
      ...built,
      builtAt: new Date().toISOString(),
    }),
  )
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

const emptyHome = () => join(dir, 'no-such-home')

describe('resolveEngine: config > PATH > velo’s build', () => {
  it('takes the configured binary over one on PATH and velo’s build, with its sibling llama-bench', async () => {
    const engine = await resolveEngine({ configured, env: { PATH: pathDir, VELO_HOME: veloHome } })
    expect(engine).toEqual({
      serverPath: configured,
      benchPath: join(dir, 'configured', 'llama-bench'),
      source: 'config',
    })
  })

  it('fails on a configured binary that does not exist instead of falling back', async () => {
    const missing = join(dir, 'nope', 'llama-server')
    const attempt = resolveEngine({ configured: missing, env: { PATH: pathDir, VELO_HOME: veloHome } })
    await expect(attempt).rejects.toBeInstanceOf(VeloError)
    await expect(attempt).rejects.toMatchObject({ code: 'VELO_ENGINE_NOT_FOUND' })
    await expect(attempt).rejects.toThrow(missing)
  })

  it('takes an executable llama-server on PATH over velo’s build; no llama-bench beside it is undefined', async () => {
    const engine = await resolveEngine({
      env: { PATH: [join(dir, 'empty'), pathDir].join(':'), VELO_HOME: veloHome },
    })
    expect(engine).toEqual({ serverPath: onPath, benchPath: undefined, source: 'path' })
  })

  it('skips a llama-server on PATH that is not executable', async () => {
    const notExecutable = join(dir, 'not-executable')
    await mkdir(notExecutable)
    await writeFile(join(notExecutable, 'llama-server'), '#!/bin/sh\n')
    await chmod(join(notExecutable, 'llama-server'), 0o644)
    const engine = await resolveEngine({ env: { PATH: notExecutable, VELO_HOME: veloHome } })
    expect(engine?.source).toBe('velo')
  })

  it('falls back to velo’s own cached build, with the llama-bench its stamp names', async () => {
    const engine = await resolveEngine({ env: { PATH: join(dir, 'empty'), VELO_HOME: veloHome } })
    expect(engine).toEqual({ ...built, source: 'velo' })
  })

  it('finds nothing without any of the three, and requireEngine says how to get one', async () => {
    const env = { PATH: join(dir, 'empty'), VELO_HOME: emptyHome() }
    expect(await resolveEngine({ env })).toBeUndefined()
    await expect(requireEngine({ env })).rejects.toMatchObject({
      code: 'VELO_ENGINE_NOT_FOUND',
      suggestion: expect.stringContaining('velo engine install'),
    })
  })

  it('reads the version of whichever binary won', async () => {
    const engine = await requireEngine({ env: { PATH: pathDir, VELO_HOME: veloHome } })
    expect(await engineVersion(engine.serverPath)).toMatchObject({ version: '2222', commit: 'bbbbbbb' })
  })
})
