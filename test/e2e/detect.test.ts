import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { cpus, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import which from 'which'
import type { ModelsList } from '../../src/core/detect/models-list.js'
import type { MachineReport } from '../../src/core/detect/types.js'
import type { LlamaServer } from '../../src/core/engine/llama-server.js'
import {
  freePort,
  type SupervisedProcess,
  spawnSupervised,
  waitUntil,
} from '../../src/core/process/supervise.js'
import { VELO_BIN, velo } from '../helpers/cli.js'
import { lacks, type RigOllama, required, rig, startRigLlamaServer, startRigOllama } from '../helpers/rig.js'

let dir: string
let modelsDir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'velo-detect-e2e-'))
  modelsDir = join(dir, 'models')
  await mkdir(modelsDir)
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('velo detect', () => {
  it('reports this machine as JSON: cores, memory, GPUs (none is an empty list), no bandwidth with --no-measure', async () => {
    const { exitCode, stdout, stderr } = await velo(['detect', '--json', '--no-measure'])
    expect(exitCode, stderr).toBe(0)
    const report = JSON.parse(stdout) as MachineReport
    expect(report.schemaVersion).toBe(1)
    expect(report.cpu.logicalCores).toBe(cpus().length)
    expect(report.cpu.physicalCores).toBeGreaterThan(0)
    expect(report.cpu.architecture).toBe(process.arch)
    expect(report.memory.totalBytes).toBe(totalmem())
    expect(report.memory.usableBytes).toBeGreaterThan(0)
    expect(report.memory.usableBytes).toBeLessThanOrEqual(report.memory.totalBytes)
    expect(Array.isArray(report.gpus)).toBe(true)
    const gpuTools =
      (await which('nvidia-smi', { nothrow: true })) || (await which('rocm-smi', { nothrow: true }))
    if (!gpuTools && !existsSync('/sys/class/drm')) expect(report.gpus).toEqual([])
    expect(report.bandwidth.mainMemory).toBeNull()
    expect(report.notes.join('\n')).toMatch(/not measured \(--no-measure\)/)
    expect(report.backends.ollama.url).toMatch(/^https?:\/\//)
  })

  it('measures main-memory bandwidth by default', async () => {
    const { exitCode, stdout } = await velo(['detect', '--json'])
    expect(exitCode).toBe(0)
    const report = JSON.parse(stdout) as MachineReport
    expect(report.bandwidth.mainMemory?.gbPerSecond).toBeGreaterThan(0)
    expect(report.bandwidth.mainMemory?.threads).toBeGreaterThanOrEqual(1)
  })

  it('prints a readable report with its sections and says which numbers are estimates', async () => {
    await symlink(required(rig().tinyModel, 'tiny model'), join(modelsDir, 'e2e-tiny.gguf'))
    const { exitCode, stdout } = await velo(['detect', '--no-measure', '--models-dir', modelsDir])
    expect(exitCode).toBe(0)
    const lines = stdout.split('\n')
    for (const section of ['CPU', 'Memory', 'GPUs', 'Memory bandwidth', 'Backends', 'Notes']) {
      expect(lines).toContain(section)
    }
    expect(stdout).toMatch(/e2e-tiny\s+models-dir\s+llama\s+19\.5M\s+F16/)
    expect(stdout).toContain('estimates from the GGUF header')
  })

  it('fails on a --models-dir that does not exist, naming it, with exit code 2', async () => {
    const { exitCode, stderr, stdout } = await velo(['detect', '--models-dir', join(dir, 'nope')])
    expect(exitCode).toBe(2)
    expect(stderr).toContain(`velo: --models-dir ${join(dir, 'nope')}: expected a folder, it does not exist`)
    expect(stderr).toContain('suggestion:')
    expect(stderr).not.toMatch(/at .*\.js:\d+/)
    expect(stdout).toBe('')
  })

  it('fails on an --ollama-url that is not a URL', async () => {
    const { exitCode, stderr } = await velo(['detect', '--ollama-url', 'localhost', '--no-measure'])
    expect(exitCode).toBe(2)
    expect(stderr).toContain('velo: --ollama-url localhost: expected an http(s) URL')
  })

  it('reports an unreadable GGUF as a note and goes on', async () => {
    const bad = join(dir, 'bad')
    await mkdir(bad)
    await writeFile(join(bad, 'truncated.gguf'), 'GGUF')
    const { exitCode, stdout } = await velo(['detect', '--json', '--no-measure', '--models-dir', bad])
    expect(exitCode).toBe(0)
    const report = JSON.parse(stdout) as MachineReport
    expect(report.notes.join('\n')).toMatch(/truncated\.gguf: not a readable GGUF file/)
    expect(report.models.some((m) => m.path.startsWith(bad))).toBe(false)
  })
})

describe.skipIf(lacks('llama-server'))('velo detect finds the rig’s llama-server', () => {
  let server: LlamaServer
  beforeAll(async () => {
    server = await startRigLlamaServer()
  })
  afterAll(async () => {
    await server?.stop()
  })

  it('on the port given with --port, and through VELO_DETECT_PORTS', async () => {
    const flag = await velo(['detect', '--json', '--no-measure', '--port', String(server.port)])
    const byFlag = JSON.parse(flag.stdout) as MachineReport
    expect(byFlag.backends.llamaServers.map((s) => s.port)).toContain(server.port)
    const viaEnv = await velo(['detect', '--json', '--no-measure'], {
      env: { ...process.env, VELO_DETECT_PORTS: String(server.port) },
    })
    const byEnv = JSON.parse(viaEnv.stdout) as MachineReport
    expect(byEnv.backends.llamaServers.find((s) => s.port === server.port)?.modelAlias).toBe('velo-tiny')
  })
})

describe.skipIf(lacks('ollama'))('velo detect and velo models list with the rig’s Ollama', () => {
  let ollama: RigOllama
  beforeAll(async () => {
    ollama = await startRigOllama()
    await ollama.create('velo-tiny', required(rig().tinyModel, 'tiny model'))
  })
  afterAll(async () => {
    await ollama?.stop()
  })

  it('detect finds it through OLLAMA_HOST', async () => {
    const host = new URL(ollama.url).host
    const { stdout } = await velo(['detect', '--json', '--no-measure'], {
      env: { ...process.env, OLLAMA_HOST: host },
    })
    const report = JSON.parse(stdout) as MachineReport
    expect(report.backends.ollama).toMatchObject({ url: ollama.url, reachable: true, version: '0.17.4' })
    expect(report.backends.ollama.models.map((m) => m.name)).toContain('velo-tiny:latest')
  })

  it('models list shows the local GGUF files and the Ollama models, as a table and as JSON', async () => {
    const text = await velo(['models', 'list', '--models-dir', modelsDir, '--ollama-url', ollama.url])
    expect(text.exitCode, text.stderr).toBe(0)
    expect(text.stdout).toMatch(/e2e-tiny\s+models-dir\s+llama\s+19\.5M\s+F16\s+4K/)
    expect(text.stdout).toContain(`Ollama at ${ollama.url}`)
    expect(text.stdout).toMatch(/velo-tiny:latest\s+llama\s+\S+\s+F16/)
    const json = await velo([
      'models',
      'list',
      '--json',
      '--models-dir',
      modelsDir,
      '--ollama-url',
      ollama.url,
    ])
    const list = JSON.parse(json.stdout) as ModelsList
    expect(list.local.find((m) => m.id === 'e2e-tiny')).toMatchObject({ source: 'models-dir', layers: 4 })
    expect(list.upstreams[0]).toMatchObject({ url: ollama.url, kind: 'ollama', reachable: true })
    expect(list.upstreams[0]?.models.find((m) => m.name === 'velo-tiny:latest')?.family).toBe('llama')
  })
})

describe.skipIf(lacks('llama-server'))('velo detect finds a running velo', () => {
  let serve: SupervisedProcess
  let url: string
  beforeAll(async () => {
    const serveDir = join(dir, 'serve-models')
    await mkdir(serveDir, { recursive: true })
    await symlink(required(rig().tinyModel, 'tiny model'), join(serveDir, 'velo-tiny.gguf'))
    const port = await freePort()
    url = `http://127.0.0.1:${port}`
    serve = spawnSupervised(process.execPath, [
      VELO_BIN,
      'serve',
      '--port',
      String(port),
      '--models-dir',
      serveDir,
      '--no-detect-ollama',
    ])
    await waitUntil(async () => (await fetch(`${url}/health`)).ok, {
      timeoutMs: 30_000,
      process: serve,
      what: 'velo serve',
    })
  })
  afterAll(async () => {
    await serve?.stop()
  })

  it('at --velo-url, with its version and models', async () => {
    const { stdout } = await velo(['detect', '--json', '--no-measure', '--velo-url', url])
    const report = JSON.parse(stdout) as MachineReport
    expect(report.backends.velo).toMatchObject({ url, models: ['velo-tiny'] })
    expect(report.backends.velo?.version).toMatch(/^\d+\.\d+\.\d+/)
    const text = await velo(['detect', '--no-measure', '--velo-url', url])
    expect(text.stdout).toMatch(/velo\s+http:\/\/127\.0\.0\.1:\d+\s+\S+\s+1 model, 0 upstreams/)
  })
})
