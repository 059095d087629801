import { describe, expect, it } from 'vitest'
import { formatBytes, formatContext, renderMachineReport } from '../../src/core/detect/render.js'
import type { MachineReport, ModelFit } from '../../src/core/detect/types.js'

const GIB = 1024 ** 3

function modelFit(target: ModelFit['target'], overrides: Partial<ModelFit> = {}): ModelFit {
  return {
    target,
    budgetBytes: 24 * GIB,
    weightsBytes: 4.6 * GIB,
    kvBytesPerToken: 131072,
    reserveBytes: GIB,
    context: 4096,
    fits: true,
    maxContext: 131072,
    decodeTokensPerSecondMax: 187.4,
    bandwidthGBps: 936,
    bandwidthSource: 'theoretical',
    ...overrides,
  }
}

const REPORT: MachineReport = {
  schemaVersion: 1,
  generatedAt: '2026-01-01T00:00:00.000Z',
  durationMs: 1234,
  os: { platform: 'linux', release: '6.8.0', distro: 'Ubuntu 24.04', hostname: 'box' },
  cpu: {
    brand: 'AMD Ryzen 9 7950X',
    vendor: 'AMD',
    architecture: 'x64',
    physicalCores: 16,
    logicalCores: 32,
    features: {
      avx: true,
      avx2: true,
      avx512: true,
      avx512_vnni: true,
      avx512_bf16: true,
      avx_vnni: false,
      amx: false,
      f16c: true,
      fma: true,
      neon: false,
      dotprod: false,
      i8mm: false,
      sve: false,
    },
  },
  memory: {
    totalBytes: 64 * GIB,
    availableBytes: 60 * GIB,
    swapTotalBytes: 0,
    cgroupLimitBytes: 32 * GIB,
    cgroupUsageBytes: 2 * GIB,
    usableBytes: 30 * GIB,
  },
  gpus: [
    {
      index: 0,
      vendor: 'nvidia',
      name: 'NVIDIA GeForce RTX 3090',
      unifiedMemory: false,
      vramTotalBytes: 24 * GIB,
      vramUsedBytes: GIB,
      vramFreeBytes: 23 * GIB,
      driverVersion: '550.54',
      computeCapability: '8.6',
      memoryBusWidthBits: 384,
      memoryClockMhz: 9751,
      theoreticalBandwidthGBps: 936.1,
      gpuCores: null,
      busId: null,
      uuid: null,
      source: 'nvidia-smi',
    },
  ],
  bandwidth: {
    mainMemory: { gbPerSecond: 61.2, threads: 8, bufferBytes: 64 * 1024 ** 2, durationMs: 900 },
    gpus: [{ index: 0, theoreticalGBps: 936.1 }],
  },
  backends: {
    ollama: {
      url: 'http://127.0.0.1:11434',
      reachable: true,
      version: '0.17.4',
      models: [
        {
          name: 'llama3.1:8b',
          sizeBytes: 4.9e9,
          digest: null,
          family: 'llama',
          parameterSize: '8.0B',
          quantization: 'Q4_K_M',
          modifiedAt: null,
        },
      ],
      loaded: [{ name: 'llama3.1:8b', sizeBytes: 6e9, vramBytes: 6e9, contextLength: 8192, expiresAt: null }],
      error: null,
    },
    llamaServerBinaries: [
      { path: '/usr/local/bin/llama-server', source: 'path', version: '6500', commit: 'abc1234' },
    ],
    llamaServers: [
      {
        url: 'http://127.0.0.1:8080',
        port: 8080,
        status: 'ok',
        modelPath: '/m/qwen.gguf',
        modelAlias: 'qwen',
        contextPerSlot: 2048,
        slots: 4,
        buildInfo: 'b6500-abc1234',
      },
    ],
    velo: null,
  },
  models: [
    {
      id: 'llama3.1:8b',
      path: '/home/u/.ollama/models/blobs/sha256-1',
      source: 'ollama',
      ollamaName: 'llama3.1:8b',
      fileBytes: 4.9e9,
      architecture: 'llama',
      name: 'Llama 3.1 8B Instruct',
      parameterCount: 8.03e9,
      quantization: 'Q4_K_M',
      contextLength: 131072,
      layers: 32,
      embeddingLength: 4096,
      headCount: 32,
      headCountKv: 8,
      headDim: 128,
      fit: {
        gpu: modelFit('gpu'),
        cpu: modelFit('cpu', { maxContext: 98304, decodeTokensPerSecondMax: 12.3 }),
      },
    },
  ],
  notes: ['bandwidth: something worth knowing'],
}

describe('detect report rendering', () => {
  const text = renderMachineReport(REPORT)

  it('has one section per part of the machine', () => {
    for (const section of [
      'CPU',
      'Memory',
      'GPUs',
      'Memory bandwidth',
      'Backends',
      'Ollama models',
      'Models (1)',
      'Notes',
    ]) {
      expect(text.split('\n')).toContain(section)
    }
  })

  it('shows what was read and says which numbers are estimates', () => {
    expect(text).toContain('AMD Ryzen 9 7950X · x64 · 16 physical / 32 logical cores')
    expect(text).toContain('AVX2')
    expect(text).toContain('cgroup limit 32.0 GiB')
    expect(text).toContain('usable for a model in RAM: 30.0 GiB')
    expect(text).toMatch(/NVIDIA GeForce RTX 3090\s+24\.0 GiB\s+23\.0 GiB\s+550\.54\s+8\.6\s+936 GB\/s/)
    expect(text).toContain('theoretical')
    expect(text).toContain('61.2 GB/s measured')
    expect(text).toMatch(
      /llama-server\s+http:\/\/127\.0\.0\.1:8080\s+b6500-abc1234\s+qwen, ctx 2048 per slot, 4 slots/,
    )
    expect(text).toMatch(/llama3\.1:8b\s+llama\s+8\.0B\s+Q4_K_M\s+4\.6 GiB\s+yes, 5\.6 GiB in VRAM, ctx 8192/)
    expect(text).toMatch(/fits VRAM\*\s+max ctx\*\s+t\/s ≤\*\s+fits RAM\*/)
    expect(text).toMatch(/llama3\.1:8b\s+ollama.*yes\s+128K\s+187\s+yes\s+96K\s+12\.3/)
    expect(text).toContain('* estimates from the GGUF header')
    expect(text).toContain('  - bandwidth: something worth knowing')
  })

  it('leaves no trailing spaces', () => {
    expect(text.split('\n').filter((line) => line !== line.trimEnd())).toEqual([])
  })

  it('says plainly when there is no GPU and nothing was measured', () => {
    const bare = renderMachineReport({
      ...REPORT,
      gpus: [],
      bandwidth: { mainMemory: null, gpus: [] },
      models: [],
      notes: [],
    })
    expect(bare).toContain('none found: models run on the CPU')
    expect(bare).toContain('main memory: not measured')
    expect(bare).toContain('no GGUF files found')
  })

  it('formats sizes and contexts', () => {
    expect(formatBytes(null)).toBe('?')
    expect(formatBytes(1536 * 1024 ** 2)).toBe('1.5 GiB')
    expect(formatBytes(38 * 1024 ** 2)).toBe('38.0 MiB')
    expect(formatContext(131072)).toBe('128K')
    expect(formatContext(5000)).toBe('5000')
  })
})
