import { copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { GGMLQuantizationType, GGUFValueType, type GgufValue } from '../../src/core/gguf/types.js'
import { writeGguf } from '../../src/core/gguf/write.js'
import { type DiscoveryProblem, discoverModels, ollamaNameOf } from '../../src/core/models/discover.js'

let root: string
let env: NodeJS.ProcessEnv

/** A small llama-shaped GGUF: enough header for discovery, a few KiB of tensors. */
async function model(path: string, options: { name?: string; tensors?: boolean; experts?: boolean } = {}) {
  await mkdir(dirname(path), { recursive: true })
  const u32 = (value: number): GgufValue => ({ type: GGUFValueType.UINT32, value })
  const metadata: Record<string, GgufValue> = {
    'general.architecture': { type: GGUFValueType.STRING, value: 'llama' },
    'general.name': { type: GGUFValueType.STRING, value: options.name ?? 'test' },
    'general.file_type': u32(1),
    'llama.context_length': u32(2048),
    'llama.embedding_length': u32(64),
    'llama.block_count': u32(2),
    'llama.attention.head_count': u32(4),
    'llama.attention.head_count_kv': u32(2),
  }
  if (options.experts) {
    metadata['llama.expert_count'] = u32(8)
    metadata['llama.expert_used_count'] = u32(2)
  }
  const fill = (buffer: Uint8Array) => buffer.fill(0)
  await writeGguf(path, {
    metadata,
    tensors:
      options.tensors === false
        ? []
        : [
            { name: 'token_embd.weight', shape: [64, 32], type: GGMLQuantizationType.F16, fill },
            { name: 'blk.0.attn_q.weight', shape: [64, 64], type: GGMLQuantizationType.F16, fill },
          ],
  })
}

async function ollamaManifest(store: string, parts: string[], digest: string) {
  const path = join(store, 'manifests', ...parts)
  await mkdir(dirname(path), { recursive: true })
  await writeFile(
    path,
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
      config: { mediaType: 'application/vnd.docker.container.image.v1+json', digest: 'sha256:00', size: 10 },
      layers: [
        { mediaType: 'application/vnd.ollama.image.model', digest, size: 1 },
        { mediaType: 'application/vnd.ollama.image.template', digest: 'sha256:11', size: 1 },
      ],
    }),
  )
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'velo-discover-'))
  const home = join(root, 'home')
  env = { HOME: home, VELO_HOME: join(root, 'velo'), OLLAMA_MODELS: join(root, 'ollama') }
  const dir = join(root, 'models')
  await model(join(dir, 'nested', 'deeper', 'alpha.gguf'), { name: 'alpha' })
  await model(join(dir, 'big-00001-of-00002.gguf'), { name: 'big' })
  await model(join(dir, 'big-00002-of-00002.gguf'), { name: 'big' })
  await model(join(dir, 'ggml-vocab-llama-spm.gguf'), { tensors: false })
  await model(join(dir, 'moe.gguf'), { experts: true })
  await writeFile(join(dir, 'broken.gguf'), 'this is not a gguf file at all')
  await model(join(dir, '.partial', 'hidden.gguf'))
  await symlink(join(dir, 'nested', 'deeper', 'alpha.gguf'), join(dir, 'zz-alpha-link.gguf'))
  await model(join(home, '.lmstudio', 'models', 'publisher', 'repo', 'studio.gguf'))
  // The Hugging Face cache: snapshot files are links into blobs/.
  const hf = join(home, '.cache', 'huggingface', 'hub', 'models--org--repo')
  await model(join(hf, 'blobs', 'a1b2c3'))
  await mkdir(join(hf, 'snapshots', 'rev1'), { recursive: true })
  await symlink(join(hf, 'blobs', 'a1b2c3'), join(hf, 'snapshots', 'rev1', 'hub-model.gguf'))
  await model(join(home, '.cache', 'llama.cpp', 'org_repo_cached.gguf'))
  await model(join(root, 'velo', 'cache', 'models', 'synth-v1', 'velo-tiny.gguf'))
  // Ollama: blobs named by digest, found through manifests.
  const store = join(root, 'ollama')
  await model(join(store, 'blobs', 'sha256-aaaa'))
  await ollamaManifest(store, ['registry.ollama.ai', 'library', 'tiny', 'latest'], 'sha256:aaaa')
  await ollamaManifest(store, ['registry.ollama.ai', 'library', 'tiny', '20m'], 'sha256:aaaa')
  await copyFile(join(store, 'blobs', 'sha256-aaaa'), join(store, 'blobs', 'sha256-bbbb'))
  await ollamaManifest(store, ['hf.co', 'bartowski', 'Some-GGUF', 'Q4_K_M'], 'sha256:bbbb')
  await ollamaManifest(store, ['registry.ollama.ai', 'library', 'gone', 'latest'], 'sha256:cccc')
  await mkdir(join(store, 'manifests', 'registry.ollama.ai', 'library', 'bad'), { recursive: true })
  await writeFile(join(store, 'manifests', 'registry.ollama.ai', 'library', 'bad', 'latest'), '{not json')
})

afterAll(async () => {
  await rm(root, { recursive: true, force: true })
})

describe('discoverModels', () => {
  it('finds models in every usual place and in --models-dir, each with its header summary', async () => {
    const problems: DiscoveryProblem[] = []
    const models = await discoverModels({
      modelsDirs: [join(root, 'models')],
      env,
      onProblem: (p) => problems.push(p),
    })
    const bySource = models.map((m) => `${m.source}:${m.id}`)
    expect(bySource).toEqual([
      'models-dir:big',
      'models-dir:moe',
      'models-dir:alpha',
      'velo:velo-tiny',
      'lm-studio:studio',
      'llama.cpp:org_repo_cached',
      'huggingface:hub-model',
      'ollama:hf.co/bartowski/Some-GGUF:Q4_K_M',
      'ollama:tiny:20m',
      'ollama:tiny:latest',
    ])
    const alpha = models.find((m) => m.id === 'alpha')
    expect(alpha?.summary).toMatchObject({
      architecture: 'llama',
      name: 'alpha',
      contextLength: 2048,
      blockCount: 2,
    })
    expect(alpha?.summary.headCountKv).toBe(2)
    expect(alpha?.ollamaName).toBeNull()
    expect(alpha?.experts).toBeNull()
    expect(models.find((m) => m.id === 'moe')?.experts).toEqual({ count: 8, used: 2 })
    const tiny = models.find((m) => m.id === 'tiny:latest')
    expect(tiny?.ollamaName).toBe('tiny:latest')
    expect(tiny?.path).toBe(join(root, 'ollama', 'blobs', 'sha256-aaaa'))
    expect(tiny?.summary.architecture).toBe('llama')
    // Both shards together.
    const big = models.find((m) => m.id === 'big')
    expect(big?.fileBytes).toBe((big?.summary.fileBytes ?? 0) * 2)
    // An unreadable file, a missing blob and a broken manifest are reported, not fatal.
    const reported = problems.map((p) => p.path)
    expect(reported).toContain(join(root, 'models', 'broken.gguf'))
    expect(reported).toContain(join(root, 'ollama', 'blobs', 'sha256-cccc'))
    expect(reported).toContain(
      join(root, 'ollama', 'manifests', 'registry.ollama.ai', 'library', 'bad', 'latest'),
    )
    expect(problems.find((p) => p.path.endsWith('broken.gguf'))?.error).toMatch(/not a readable GGUF/)
  })

  it('searches only the given folders when asked to', async () => {
    const models = await discoverModels({ modelsDirs: [join(root, 'models')], env, usualPlaces: false })
    expect(models.every((m) => m.source === 'models-dir')).toBe(true)
    expect(models.map((m) => m.id)).toEqual(['big', 'moe', 'alpha'])
  })

  it('finds nothing, without errors, when no usual place exists', async () => {
    const problems: DiscoveryProblem[] = []
    const empty = {
      HOME: join(root, 'nobody'),
      VELO_HOME: join(root, 'nobody'),
      OLLAMA_MODELS: join(root, 'none'),
    }
    expect(await discoverModels({ env: empty, onProblem: (p) => problems.push(p) })).toEqual([])
    expect(problems).toEqual([])
  })

  it('names Ollama models as Ollama shows them', () => {
    expect(ollamaNameOf(['registry.ollama.ai', 'library', 'llama3.2', '3b'])).toBe('llama3.2:3b')
    expect(ollamaNameOf(['registry.ollama.ai', 'user', 'model', 'latest'])).toBe('user/model:latest')
    expect(ollamaNameOf(['hf.co', 'org', 'repo', 'Q4_K_M'])).toBe('hf.co/org/repo:Q4_K_M')
  })
})
