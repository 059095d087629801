import { createHash } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readGguf } from '../../src/core/gguf/read.js'
import { velo } from '../helpers/cli.js'
import { lacks } from '../helpers/rig.js'

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'velo-cli-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('velo CLI', () => {
  it('lists its commands in --help', async () => {
    const { stdout, exitCode } = await velo(['--help'])
    expect(exitCode).toBe(0)
    for (const topic of ['engine', 'models']) expect(stdout).toContain(topic)
  })

  it('fails with a one-line cause and a suggestion, not a stack trace', async () => {
    const { stderr, exitCode } = await velo(['engine', 'path', '--config', join(dir, 'nope.yaml')])
    expect(exitCode).toBe(2)
    expect(stderr).toMatch(/velo: config file .*nope\.yaml does not exist/)
    expect(stderr).toContain('suggestion:')
    expect(stderr).not.toMatch(/at .*\.js:\d+/)
  })
})

describe.skipIf(lacks('llama-server'))('velo engine and models', () => {
  it('reuses the cached engine build on a second install', async () => {
    const first = await velo(['engine', 'install', '--json'])
    expect(first.exitCode).toBe(0)
    const second = await velo(['engine', 'install', '--json'])
    expect(second.exitCode).toBe(0)
    const result = JSON.parse(second.stdout) as { cached: boolean; serverPath: string; tag: string }
    expect(result.cached).toBe(true)
    expect(result.serverPath).toMatch(/llama-server$/)
    expect(second.stderr).toContain('reused the cache')
  })

  it('prints the llama-server it will use and its version', async () => {
    const path = await velo(['engine', 'path'])
    expect(path.exitCode).toBe(0)
    expect(path.stdout.trim()).toMatch(/llama-server$/)
    const version = await velo(['engine', 'version', '--json'])
    expect(JSON.parse(version.stdout)).toMatchObject({ serverPath: path.stdout.trim() })
  })

  it('synthesizes a tiny model whose header says what was asked for', async () => {
    const out = join(dir, 'tiny.gguf')
    const { exitCode, stdout } = await velo(['models', 'synth', '--size', 'tiny', '--out', out, '--json'])
    expect(exitCode).toBe(0)
    const result = JSON.parse(stdout) as { parameterCount: number }
    expect(result.parameterCount).toBeGreaterThan(15e6)
    expect(result.parameterCount).toBeLessThan(25e6)
    const { summary, metadata } = await readGguf(out)
    expect(summary.architecture).toBe('llama')
    expect(summary.blockCount).toBe(4)
    expect(summary.vocabSize).toBe(32000)
    expect(summary.hasChatTemplate).toBe(true)
    expect(String(metadata['tokenizer.chat_template']?.value)).toContain('<tool_call>')
    expect(metadata['tokenizer.ggml.model']?.value).toBe('llama')
  })

  it('gives the same bytes for the same seed', async () => {
    const a = join(dir, 'a.gguf')
    const b = join(dir, 'b.gguf')
    await velo(['models', 'synth', '--out', a, '--seed', '7'])
    await velo(['models', 'synth', '--out', b, '--seed', '7'])
    const { createHash } = await import('node:crypto')
    const { readFile } = await import('node:fs/promises')
    const hash = async (p: string) =>
      createHash('sha256')
        .update(await readFile(p))
        .digest('hex')
    expect(await hash(a)).toBe(await hash(b))
  })
})

describe('velo keys create', () => {
  it('prints a new key once and the auth.keys entry that holds only its SHA-256', async () => {
    const result = await velo([
      'keys',
      'create',
      '--name',
      'alice',
      '--rpm',
      '60',
      '--models',
      'qwen*',
      '--json',
    ])
    expect(result.exitCode).toBe(0)
    const created = JSON.parse(result.stdout) as { key: string; entry: Record<string, unknown> }
    expect(created.key).toMatch(/^sk-velo-[\w-]{43}$/)
    expect(created.entry).toEqual({
      key: `sha256:${createHash('sha256').update(created.key).digest('hex')}`,
      name: 'alice',
      scope: 'user',
      models: ['qwen*'],
      rpm: 60,
    })
    const text = await velo(['keys', 'create', '--scope', 'admin'])
    expect(text.stdout).toMatch(/^key: sk-velo-/)
    expect(text.stdout).toMatch(/auth:\n {2}keys:\n {4}- key: sha256:[0-9a-f]{64}\n {6}scope: admin/)
    expect((await velo(['keys', 'create', '--scope', 'root'])).exitCode).toBe(2)
  })
})
