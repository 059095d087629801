import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Ollama } from 'ollama'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  detectHardware,
  ggufDigest,
  type Parameters,
  type Profile,
  profileId,
  writeProfile,
} from '../../src/core/profiles/index.js'
import { storeProfiles } from '../../src/proxy/profiles.js'
import type { VeloServer } from '../../src/proxy/server.js'
import { lacks, type RigOllama, required, rig, startRigOllama } from '../helpers/rig.js'
import { getJson, managedPid, modelStatus, startVelo } from './serve-helpers.js'

async function makeProfile(
  model: Profile['model'],
  backend: Profile['backend'],
  parameters: Parameters,
): Promise<Profile> {
  const hardware = await detectHardware()
  const summary = { median: 1, min: 1, max: 1, samples: [1] }
  return {
    version: 1,
    id: profileId(model.name, model.digest, hardware),
    model,
    backend,
    engine: {},
    hardware,
    objective: {
      goal: 'speed',
      metric: 'generation tokens/s, one stream',
      unit: 't/s',
      higherIsBetter: true,
      concurrency: 1,
      promptTokens: 16,
      genTokens: 16,
    },
    parameters,
    measurements: {
      baseline: summary,
      tuned: summary,
      speedup: { median: 1, low: 1, high: 1 },
      trials: 1,
      seconds: 1,
    },
    createdAt: new Date().toISOString(),
  }
}

/** The command line a process runs with, as the kernel has it. */
async function commandLine(pid: number): Promise<string[]> {
  return (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').filter(Boolean)
}

function argValue(args: string[], flag: string): string | undefined {
  const at = args.indexOf(flag)
  return at >= 0 ? args[at + 1] : undefined
}

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'velo-profiles-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe.skipIf(lacks('llama-server'))('a profile changes the managed llama-server’s arguments', () => {
  let velo: VeloServer
  let profile: Profile

  beforeAll(async () => {
    const tiny = required(rig().tinyModel, 'tiny model')
    profile = await makeProfile(
      { name: 'velo-tiny', path: tiny, digest: await ggufDigest(tiny), digestMethod: 'gguf-sampled-sha256' },
      'llama-server',
      { ctx: 1536, parallel: 3, batch: 256 },
    )
    await writeProfile(profile, { dir })
    velo = await startVelo(
      {
        managed: {
          models: {
            'velo-tiny': { path: tiny },
            // The model's own arguments win over the profile's for the same setting.
            'tiny-own': { path: tiny, args: ['-np', '2'] },
          },
        },
      },
      { profiles: storeProfiles({ dir }) },
    )
  })
  afterAll(async () => {
    await velo?.close()
  })

  it('starts llama-server with the profile’s context, slots and batch', async () => {
    const openai = new OpenAI({ baseURL: `${velo.url}/v1`, apiKey: 'unused', maxRetries: 0 })
    await openai.chat.completions.create({
      model: 'velo-tiny',
      messages: [{ role: 'user', content: 'Hi' }],
      max_tokens: 2,
    })
    const args = await commandLine(required(managedPid(velo, 'velo-tiny'), 'pid'))
    expect(argValue(args, '--ctx-size')).toBe('1536')
    expect(argValue(args, '--parallel')).toBe('3')
    expect(argValue(args, '--batch-size')).toBe('256')
    const status = await modelStatus(velo, 'velo-tiny')
    expect(status.profile).toBe(profile.id)
    const props = await getJson<{ total_slots: number }>(`${status.upstream}/props`)
    expect(props.body.total_slots).toBe(3)
  })

  it('keeps a model’s own arguments over the profile’s', async () => {
    const openai = new OpenAI({ baseURL: `${velo.url}/v1`, apiKey: 'unused', maxRetries: 0 })
    await openai.chat.completions.create({
      model: 'tiny-own',
      messages: [{ role: 'user', content: 'Hi' }],
      max_tokens: 2,
    })
    const args = await commandLine(required(managedPid(velo, 'tiny-own'), 'pid'))
    expect(argValue(args, '-np')).toBe('2')
    expect(args).not.toContain('--parallel')
    expect(argValue(args, '--ctx-size')).toBe('1536')
  })
})

describe.skipIf(lacks('ollama'))('a profile changes the options that reach Ollama', () => {
  let upstream: RigOllama
  let velo: VeloServer
  let client: Ollama

  /** The context Ollama loaded the model with (`/api/ps`). */
  async function loadedContext(): Promise<number | undefined> {
    const { body } = await getJson<{ models: { name: string; context_length?: number }[] }>(
      `${upstream.url}/api/ps`,
    )
    return body.models.find((model) => model.name === 'velo-tiny:latest')?.context_length
  }

  beforeAll(async () => {
    upstream = await startRigOllama()
    await upstream.create('velo-tiny', required(rig().tinyModel, 'tiny model'))
    const { body } = await getJson<{ models: { name: string; digest: string }[] }>(`${upstream.url}/api/tags`)
    const digest = required(body.models.find((model) => model.name === 'velo-tiny:latest')?.digest, 'digest')
    await writeProfile(
      await makeProfile({ name: 'velo-tiny:latest', digest, digestMethod: 'ollama' }, 'ollama', { ctx: 768 }),
      { dir },
    )
    velo = await startVelo(
      { upstreams: [{ url: upstream.url, kind: 'ollama' }] },
      { profiles: storeProfiles({ dir }) },
    )
    client = new Ollama({ host: velo.url })
  })
  afterAll(async () => {
    await velo?.close()
    await upstream?.stop()
  })

  it('sends the profile’s num_ctx when the request sets none', async () => {
    await client.chat({
      model: 'velo-tiny',
      messages: [{ role: 'user', content: 'Hi' }],
      options: { num_predict: 2 },
    })
    expect(await loadedContext()).toBe(768)
  })

  it('lets the request’s own num_ctx win', async () => {
    await client.chat({
      model: 'velo-tiny',
      messages: [{ role: 'user', content: 'Hi' }],
      options: { num_predict: 2, num_ctx: 1024 },
    })
    expect(await loadedContext()).toBe(1024)
  })

  it('applies it to OpenAI clients too (translated requests)', async () => {
    const openai = new OpenAI({ baseURL: `${velo.url}/v1`, apiKey: 'unused', maxRetries: 0 })
    await openai.chat.completions.create({
      model: 'velo-tiny',
      messages: [{ role: 'user', content: 'Hi' }],
      max_tokens: 2,
    })
    expect(await loadedContext()).toBe(768)
  })
})
