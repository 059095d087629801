import { mkdtemp, rm, symlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { Ollama } from 'ollama'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { detectMachine } from '../../src/core/detect/index.js'
import type { LlamaServer } from '../../src/core/engine/llama-server.js'
import { readGguf } from '../../src/core/gguf/read.js'
import { discoverModels } from '../../src/core/models/discover.js'
import { lacks, type RigOllama, required, rig, startRigLlamaServer, startRigOllama } from '../helpers/rig.js'

/** Only what the test points at: no usual places, no bandwidth probe, so each test checks one thing. */
const QUIET = { measureBandwidth: false, usualPlaces: false } as const

describe.skipIf(lacks('ollama'))('velo detect with the rig’s Ollama', () => {
  let ollama: RigOllama
  beforeAll(async () => {
    ollama = await startRigOllama()
    await ollama.create('velo-tiny', required(rig().tinyModel, 'tiny model'))
  })
  afterAll(async () => {
    await ollama?.stop()
  })

  it('reports the Ollama, its version and the model with family and quantization', async () => {
    const report = await detectMachine({ ...QUIET, ollamaUrl: ollama.url })
    const backend = report.backends.ollama
    expect(backend).toMatchObject({ url: ollama.url, reachable: true, error: null })
    expect(backend.version).toBe('0.17.4')
    const model = backend.models.find((m) => m.name === 'velo-tiny:latest')
    expect(model).toMatchObject({ family: 'llama', quantization: 'F16' })
    expect(model?.sizeBytes).toBeGreaterThan(30e6)
    expect(model?.parameterSize).toMatch(/M$/)
    expect(backend.loaded).toEqual([])
  })

  it('lists the model as loaded after a chat', async () => {
    const client = new Ollama({ host: ollama.url })
    await client.chat({
      model: 'velo-tiny',
      messages: [{ role: 'user', content: 'Hi' }],
      options: { num_predict: 4 },
    })
    const report = await detectMachine({ ...QUIET, ollamaUrl: ollama.url })
    const loaded = report.backends.ollama.loaded.find((m) => m.name === 'velo-tiny:latest')
    expect(loaded).toBeDefined()
    expect(loaded?.sizeBytes).toBeGreaterThan(0)
    // No GPU here: nothing of it is in VRAM.
    expect(loaded?.vramBytes).toBe(0)
    expect(loaded?.contextLength).toBe(2048)
    expect(loaded?.expiresAt).not.toBeNull()
  })

  it('resolves the model’s blob in Ollama’s real store through its manifests', async () => {
    // The store lives in the rig's temporary home; Ollama names the blob in the model's Modelfile.
    const client = new Ollama({ host: ollama.url })
    const shown = await client.show({ model: 'velo-tiny' })
    const blob = /^FROM (\S+)$/m.exec(shown.modelfile)?.[1]
    expect(blob).toMatch(/blobs\/sha256-[0-9a-f]{64}$/)
    const store = dirname(dirname(blob ?? ''))
    const models = await discoverModels({ env: { HOME: store, VELO_HOME: store, OLLAMA_MODELS: store } })
    const found = models.find((m) => m.source === 'ollama')
    expect(found).toMatchObject({ id: 'velo-tiny:latest', ollamaName: 'velo-tiny:latest', path: blob })
    expect(found?.summary).toMatchObject({ architecture: 'llama', blockCount: 4, fileType: 'F16' })
  })
})

describe.skipIf(lacks('llama-server'))('velo detect with the rig’s llama-server', () => {
  let server: LlamaServer
  beforeAll(async () => {
    server = await startRigLlamaServer()
  })
  afterAll(async () => {
    await server?.stop()
  })

  it('finds the running llama-server on the port it is given, with its model and slots', async () => {
    const report = await detectMachine({ ...QUIET, ports: [server.port] })
    const found = report.backends.llamaServers.find((s) => s.port === server.port)
    expect(found).toMatchObject({
      url: `http://127.0.0.1:${server.port}`,
      status: 'ok',
      modelAlias: 'velo-tiny',
      modelPath: required(rig().tinyModel, 'tiny model'),
      // --ctx-size 2048 shared by --parallel 2.
      contextPerSlot: 1024,
      slots: 2,
    })
    expect(found?.buildInfo).toMatch(/\S/)
  })

  it('does not report it when its port is not probed', async () => {
    const report = await detectMachine({ ...QUIET })
    expect(report.backends.llamaServers.find((s) => s.port === server.port)).toBeUndefined()
  })

  it('lists velo’s llama-server build with its version', async () => {
    const report = await detectMachine({ ...QUIET })
    const binary = report.backends.llamaServerBinaries.find((b) => b.path === rig().llamaServer)
    expect(binary?.version).toMatch(/\S/)
    expect(binary?.commit).toMatch(/^[0-9a-f]+$/)
  })
})

describe.skipIf(lacks('llama-server'))('velo detect with a --models-dir', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'velo-detect-models-'))
    await symlink(required(rig().tinyModel, 'tiny model'), join(dir, 'my-tiny.gguf'))
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('discovers the synthetic model with its header metadata and what fits', async () => {
    const report = await detectMachine({ ...QUIET, modelsDirs: [dir] })
    const model = report.models.find((m) => m.id === 'my-tiny')
    const { summary } = await readGguf(required(rig().tinyModel, 'tiny model'))
    expect(model).toMatchObject({
      source: 'models-dir',
      path: join(dir, 'my-tiny.gguf'),
      architecture: 'llama',
      name: 'velo-synth-tiny',
      parameterCount: summary.parameterCount,
      quantization: 'F16',
      contextLength: 4096,
      layers: 4,
      headCountKv: 4,
      headDim: 64,
    })
    // No GPU on this machine: only the CPU estimate, which fits in RAM at its full context.
    expect(model?.fit.gpu).toBeNull()
    expect(model?.fit.cpu).toMatchObject({
      target: 'cpu',
      fits: true,
      maxContext: 4096,
      kvBytesPerToken: 4 * 4 * 64 * 2 * 2,
      // Not measured (QUIET), so no decode bound.
      decodeTokensPerSecondMax: null,
    })
  })
})
