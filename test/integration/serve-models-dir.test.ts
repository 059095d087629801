import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/core/config/load.js'
import { applyServeFlags } from '../../src/proxy/serve.js'
import { createVeloServer, type VeloServer } from '../../src/proxy/server.js'
import { lacks, required, rig } from '../helpers/rig.js'
import { getJson, modelStatus } from './serve-helpers.js'

describe.skipIf(lacks('llama-server'))('velo serve --models-dir', () => {
  let dir: string
  let velo: VeloServer

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'velo-models-dir-'))
    // A link, as the Hugging Face cache has them, one folder down; a file that is not a model beside it.
    await mkdir(join(dir, 'chat'))
    await symlink(required(rig().tinyModel, 'tiny model'), join(dir, 'chat', 'dir-tiny.gguf'))
    await writeFile(join(dir, 'README.txt'), 'not a model')
    // The config as `velo serve --models-dir DIR` makes it (file config, then the flag on top).
    const config = applyServeFlags(parseConfig({ server: { port: 0 } }), { modelsDir: [dir] })
    velo = createVeloServer({
      config,
      version: 'test',
      llamaServer: async () => required(rig().llamaServer, 'llama-server'),
      autoOllama: false,
      refreshIntervalMs: 0,
    })
    await velo.start()
  })
  afterAll(async () => {
    await velo?.close()
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  it('lists the GGUF file found there, named after the file, in /v1/models and /api/tags', async () => {
    const models = await getJson<{ data: { id: string }[] }>(`${velo.url}/v1/models`)
    expect(models.body.data.map((model) => model.id)).toEqual(['dir-tiny'])
    const tags = await getJson<{ models: { name: string; details: { family: string } }[] }>(
      `${velo.url}/api/tags`,
    )
    expect(tags.body.models.map((model) => model.name)).toEqual(['dir-tiny'])
    expect(tags.body.models[0]?.details.family).toBe('llama')
    expect(await modelStatus(velo, 'dir-tiny')).toMatchObject({ kind: 'managed', state: 'unloaded' })
  })

  it('chats with it through a llama-server started on the first request', async () => {
    const openai = new OpenAI({ baseURL: `${velo.url}/v1`, apiKey: 'unused', maxRetries: 0 })
    const { data, response } = await openai.chat.completions
      .create({ model: 'dir-tiny', messages: [{ role: 'user', content: 'Say hello' }], max_tokens: 6 })
      .withResponse()
    expect(data.choices[0]?.message.content?.length).toBeGreaterThan(0)
    expect(data.usage?.completion_tokens).toBeGreaterThan(0)
    expect(response.headers.get('x-velo-upstream')).toBe('managed:dir-tiny')
    expect(await modelStatus(velo, 'dir-tiny')).toMatchObject({ state: 'ready' })
  })
})
