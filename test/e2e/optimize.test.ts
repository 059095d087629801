import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ensureSynthModel } from '../../src/core/models/synth.js'
import type { OptimizeResult } from '../../src/core/optimize/optimize.js'
import type { ProfileList, StoredProfile } from '../../src/core/profiles/store.js'
import { VELO_BIN, velo } from '../helpers/cli.js'
import { lacks, required, rig } from '../helpers/rig.js'

const LONG = 900_000

let home: string
let env: NodeJS.ProcessEnv
beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'velo-optimize-cli-'))
  // Profiles go to a fresh config folder; the engine build and models stay in the shared cache.
  env = { ...process.env, XDG_CONFIG_HOME: home }
})
afterAll(async () => {
  await rm(home, { recursive: true, force: true })
})

describe('velo optimize input errors', () => {
  it('names a missing model and suggests what to pass', async () => {
    const { exitCode, stderr } = await velo(['optimize', '--model', join(home, 'nope.gguf')], { env })
    expect(exitCode).toBe(1)
    expect(stderr).toMatch(/velo: model .*nope\.gguf is not a file/)
    expect(stderr).toContain('suggestion: pass a GGUF path to --model')
    expect(stderr).not.toMatch(/at .*\.js:\d+/)
  })

  it('names a bad size or duration flag', async () => {
    const memory = await velo(['optimize', '--model', 'x.gguf', '--max-memory', 'lots'], { env })
    expect(memory.exitCode).toBe(2)
    expect(memory.stderr).toContain('--max-memory: expected a size like 512MiB or 8GiB, got "lots"')
    const budget = await velo(['optimize', '--model', 'x.gguf', '--time-budget', 'soon'], { env })
    expect(budget.stderr).toContain('--time-budget: expected a duration like 90s or 10m, got "soon"')
  })
})

describe.skipIf(lacks('llama-server'))('velo optimize and velo profiles', () => {
  let small: string
  let profile: OptimizeResult['profile']
  beforeAll(async () => {
    small = await ensureSynthModel('small')
  })

  it(
    'optimizes the small model for speed and prints the result as JSON',
    async () => {
      const { exitCode, stdout, stderr } = await velo(
        [
          'optimize',
          '--model',
          small,
          '--goal',
          'speed',
          '--max-trials',
          '4',
          '--gen-tokens',
          '16',
          '--fresh',
          '--json',
        ],
        { env },
      )
      expect(exitCode, stderr).toBe(0)
      const result = JSON.parse(stdout) as OptimizeResult
      profile = result.profile
      expect(result.profileFile).toBe(join(home, 'velo', 'profiles', `${profile.id}.yaml`))
      expect(profile.objective.goal).toBe('speed')
      // Progress goes to stderr, one line per finished trial.
      expect(stderr).toMatch(/#1 baseline defaults: [\d.]+ tok\/s/)
      expect(stderr.match(/^ {2}#\d+ /gm)).toHaveLength(4)
    },
    LONG,
  )

  it('lists, shows and exports the profile in every format', async () => {
    const list = await velo(['profiles', 'list', '--json'], { env })
    expect(list.exitCode).toBe(0)
    expect((JSON.parse(list.stdout) as ProfileList).profiles.map((p) => p.profile.id)).toEqual([profile.id])
    const table = await velo(['profiles', 'list'], { env })
    expect(table.stdout).toMatch(new RegExp(`^${profile.id}\\s+llama-server\\s+speed\\s+x[\\d.]+`, 'm'))

    const show = await velo(['profiles', 'show', profile.id], { env })
    expect(show.exitCode).toBe(0)
    expect(show.stdout).toContain(`model     ${profile.model.name} ${small}`)
    expect(show.stdout).toMatch(/speedup {3}x[\d.]+ \(spread x[\d.]+ \.\. x[\d.]+\)/)
    const shown = JSON.parse(
      (await velo(['profiles', 'show', profile.id, '--json'], { env })).stdout,
    ) as StoredProfile
    expect(shown.profile).toEqual(profile)

    const args = await velo(['profiles', 'export', profile.id, '--format', 'llama-server'], { env })
    expect(args.stdout).toMatch(/^--ctx-size 4096 (.* )?--parallel 1$/)
    const modelfile = await velo(['profiles', 'export', profile.id, '--format', 'modelfile'], { env })
    expect(modelfile.stdout).toContain(`FROM ${small}\nPARAMETER num_ctx 4096\n`)
    const envFile = await velo(['profiles', 'export', profile.id, '--format', 'env'], { env })
    expect(envFile.stdout).toMatch(/^LLAMA_ARG_CTX_SIZE=4096$/m)
    const bad = await velo(['profiles', 'export', profile.id, '--format', 'docker'], { env })
    expect(bad.exitCode).not.toBe(0)
    expect(bad.stderr).toContain('--format')
  })

  it('names a corrupt profile file, lists the rest, and removes by id', async () => {
    const corrupt = join(home, 'velo', 'profiles', 'broken.yaml')
    await writeFile(corrupt, 'version: 1\nid: [unclosed\n')
    const list = await velo(['profiles', 'list'], { env })
    expect(list.exitCode).toBe(0)
    expect(list.stderr).toContain(`velo: skipped ${corrupt}: not valid YAML`)
    expect(list.stdout).toContain(profile.id)
    const missing = await velo(['profiles', 'show', 'nothing-like-this'], { env })
    expect(missing.exitCode).toBe(1)
    expect(missing.stderr).toMatch(/velo: no profile nothing-like-this in /)
    expect((await velo(['profiles', 'rm', 'broken'], { env })).exitCode).toBe(0)
    expect((await velo(['profiles', 'rm', profile.id], { env })).stdout).toContain(
      `removed ${join(home, 'velo', 'profiles')}`,
    )
    expect((await velo(['profiles', 'list'], { env })).stdout).toContain('no profiles yet')
  })

  it(
    'continues a run that was killed mid-way from its trial log',
    async () => {
      const tiny = required(rig().tinyModel, 'tiny model')
      const args = ['optimize', '--model', tiny, '--goal', 'speed', '--max-trials', '6', '--gen-tokens', '16']
      const child = execa(process.execPath, [VELO_BIN, ...args, '--fresh'], { env, reject: false, all: true })
      let seen = ''
      await new Promise<void>((resolve) => {
        child.stderr?.on('data', (chunk: Buffer) => {
          seen += chunk.toString()
          if (/^ {2}#2 /m.test(seen)) resolve()
        })
        void child.then(() => resolve())
      })
      child.kill('SIGTERM')
      const killed = await child
      expect(killed.exitCode).not.toBe(0)
      const finishedBefore = (seen.match(/^ {2}#\d+ /gm) ?? []).length
      expect(finishedBefore).toBeGreaterThanOrEqual(2)

      const again = await velo([...args, '--resume', '--json'], { env })
      expect(again.exitCode, again.stderr).toBe(0)
      const result = JSON.parse(again.stdout) as OptimizeResult
      expect(result.resumed).toBeGreaterThanOrEqual(2)
      expect(again.stderr).toMatch(/resuming: \d+ finished trials in .*\.jsonl/)
      expect(again.stderr.match(/\(from the log\)/g)).toHaveLength(result.resumed)
      expect(result.measured + result.resumed).toBe(6)
    },
    LONG,
  )
})
