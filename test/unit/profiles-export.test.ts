import { describe, expect, it } from 'vitest'
import {
  exportProfile,
  profileToLlamaServerArgs,
  profileToOllamaOptions,
} from '../../src/core/profiles/index.js'
import { sampleProfile } from './profiles-sample.js'

describe('profile exports', () => {
  const profile = sampleProfile()

  it('gives llama-server arguments serve can append', () => {
    expect(profileToLlamaServerArgs(profile)).toEqual([
      '--ctx-size',
      '8192',
      '--threads',
      '2',
      '--ubatch-size',
      '256',
      '--flash-attn',
      'on',
      '--cache-type-k',
      'q8_0',
      '--cache-type-v',
      'q8_0',
      '--parallel',
      '4',
    ])
    expect(exportProfile(profile, 'llama-server')).toBe(
      '--ctx-size 8192 --threads 2 --ubatch-size 256 --flash-attn on --cache-type-k q8_0 --cache-type-v q8_0 --parallel 4\n',
    )
  })

  it('gives Ollama per-request options with the context per slot', () => {
    expect(profileToOllamaOptions(profile)).toEqual({ num_ctx: 2048, num_thread: 2 })
    // Without -np, llama-server's 4 slots share the context.
    expect(profileToOllamaOptions(sampleProfile({ parameters: { ctx: 16_384 } }))).toEqual({ num_ctx: 4096 })
    expect(profileToOllamaOptions(sampleProfile({ parameters: { gpuLayers: 20, batch: 256 } }))).toEqual({
      num_gpu: 20,
      num_batch: 256,
    })
  })

  it('writes a Modelfile with PARAMETER lines and names what Ollama sets server-wide', () => {
    const text = exportProfile(profile, 'modelfile')
    const lines = text.trim().split('\n')
    expect(lines).toContain('FROM /models/velo-small.gguf')
    expect(lines).toContain('PARAMETER num_ctx 2048')
    expect(lines).toContain('PARAMETER num_thread 2')
    expect(lines.filter((l) => l.startsWith('PARAMETER'))).toHaveLength(2)
    expect(text).toContain('#   OLLAMA_FLASH_ATTENTION=1')
    expect(text).toContain('#   OLLAMA_KV_CACHE_TYPE=q8_0')
    const ollama = sampleProfile({
      backend: 'ollama',
      model: { name: 'llama3.2:latest', digest: 'aaaabbbbcccc', digestMethod: 'ollama' },
      parameters: { ctx: 4096, threads: 4 },
    })
    expect(exportProfile(ollama, 'modelfile')).toContain(
      'FROM llama3.2:latest\nPARAMETER num_ctx 4096\nPARAMETER num_thread 4\n',
    )
  })

  it('writes environment variables llama-server (or ollama serve) reads', () => {
    expect(exportProfile(profile, 'env').trim().split('\n')).toEqual([
      'LLAMA_ARG_CTX_SIZE=8192',
      'LLAMA_ARG_THREADS=2',
      'LLAMA_ARG_UBATCH=256',
      'LLAMA_ARG_FLASH_ATTN=on',
      'LLAMA_ARG_CACHE_TYPE_K=q8_0',
      'LLAMA_ARG_CACHE_TYPE_V=q8_0',
      'LLAMA_ARG_N_PARALLEL=4',
    ])
    const ollama = sampleProfile({
      backend: 'ollama',
      model: { name: 'm', digest: 'aaaabbbbcccc', digestMethod: 'ollama' },
      parameters: { ctx: 4096, threads: 4 },
    })
    expect(exportProfile(ollama, 'env')).toBe(
      '# per-request options (velo serve sends them): {"num_ctx":4096,"num_thread":4}\n',
    )
  })
})
