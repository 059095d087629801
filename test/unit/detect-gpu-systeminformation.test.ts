import type { Systeminformation } from 'systeminformation'
import { describe, expect, it } from 'vitest'
import { detectGpus, gpusFromGraphics, type RunTool, type ToolResult } from '../../src/core/detect/gpu.js'

const MIB = 1024 ** 2

// `si.graphics()` on a Windows desktop with an RTX 4070 and the CPU's UHD 770: systeminformation
// reads VRAM from the registry and, for NVIDIA, used/free from its own nvidia-smi call (MiB).
const WINDOWS: Systeminformation.GraphicsData = {
  controllers: [
    {
      vendor: 'NVIDIA',
      model: 'NVIDIA GeForce RTX 4070',
      bus: 'PCI',
      busAddress: '01:00.0',
      vram: 12282,
      vramDynamic: false,
      subDeviceId: '0x88F51043',
      driverVersion: '31.0.15.5161',
      name: 'NVIDIA GeForce RTX 4070',
      pciBus: '00000000:01:00.0',
      memoryTotal: 12282,
      memoryUsed: 0,
      memoryFree: 11988,
      utilizationGpu: 3,
      temperatureGpu: 38,
    },
    {
      vendor: 'Intel Corporation',
      model: 'Intel(R) UHD Graphics 770',
      bus: '',
      vram: 1024,
      vramDynamic: true,
      subDeviceId: '0x88821043',
      driverVersion: '31.0.101.4502',
    },
  ],
  displays: [],
}

// `si.graphics()` on an M2 Pro: the GPU's memory is RAM, so systeminformation calls it dynamic.
const APPLE: Systeminformation.GraphicsData = {
  controllers: [
    {
      vendor: 'Apple',
      model: 'Apple M2 Pro',
      bus: 'Built-In',
      vram: null,
      vramDynamic: true,
      cores: 19,
      metalVersion: 'Metal 3',
    },
  ],
  displays: [],
}

function fakeRun(answers: Record<string, Partial<ToolResult>>): RunTool {
  return async (command) => {
    const answer = answers[command]
    if (!answer) return { found: false, exitCode: null, stdout: '', stderr: '' }
    return { found: true, exitCode: 0, stdout: '', stderr: '', ...answer }
  }
}

describe('GPUs from systeminformation', () => {
  it('turns a Windows graphics report into GPUs with VRAM in bytes, a used 0 as 0 and no guessed fields', () => {
    const [nvidia, intel, ...rest] = gpusFromGraphics(WINDOWS.controllers)
    expect(rest).toEqual([])
    expect(nvidia).toEqual({
      index: 0,
      vendor: 'nvidia',
      name: 'NVIDIA GeForce RTX 4070',
      unifiedMemory: false,
      vramTotalBytes: 12282 * MIB,
      vramUsedBytes: 0,
      vramFreeBytes: 11988 * MIB,
      driverVersion: '31.0.15.5161',
      computeCapability: null,
      memoryBusWidthBits: null,
      memoryClockMhz: null,
      theoreticalBandwidthGBps: null,
      gpuCores: null,
      busId: '01:00.0',
      uuid: null,
      source: 'systeminformation',
    })
    expect(intel).toMatchObject({
      index: 1,
      vendor: 'intel',
      name: 'Intel(R) UHD Graphics 770',
      vramTotalBytes: 1024 * MIB,
      vramUsedBytes: null,
      vramFreeBytes: null,
      busId: null,
      source: 'systeminformation',
    })
  })

  it('reads an Apple GPU with dynamic VRAM as unified memory with its cores', () => {
    expect(gpusFromGraphics(APPLE.controllers)).toEqual([
      expect.objectContaining({
        vendor: 'apple',
        name: 'Apple M2 Pro',
        unifiedMemory: true,
        vramTotalBytes: null,
        vramUsedBytes: null,
        vramFreeBytes: null,
        gpuCores: 19,
        source: 'systeminformation',
      }),
    ])
  })

  it('keeps a VRAM of 0 (unknown) and an unknown vendor as null and "other"', () => {
    const [gpu] = gpusFromGraphics([
      { vendor: 'Matrox Electronics Systems Ltd.', model: '', bus: 'PCI', vram: 0, vramDynamic: false },
    ])
    expect(gpu).toMatchObject({ vendor: 'other', name: null, vramTotalBytes: null, driverVersion: null })
  })

  it('names the vendor from the whole word, so "Intel Corporation" is not ATI', () => {
    const vendors = [
      'Intel Corporation',
      'Advanced Micro Devices, Inc. [AMD/ATI]',
      'ATI Technologies Inc.',
      'AMD',
      'NVIDIA Corporation',
    ].map(
      (vendor) =>
        gpusFromGraphics([{ vendor, model: 'x', bus: 'PCI', vram: 0, vramDynamic: false }])[0]?.vendor,
    )
    expect(vendors).toEqual(['intel', 'amd', 'amd', 'amd', 'nvidia'])
  })

  it('is what detectGpus reports on Windows when nvidia-smi is not on PATH', async () => {
    const notes: string[] = []
    const gpus = await detectGpus(notes, {
      run: fakeRun({}),
      platform: 'win32',
      graphics: async () => WINDOWS,
    })
    expect(gpus.map((gpu) => [gpu.vendor, gpu.source, gpu.vramTotalBytes])).toEqual([
      ['nvidia', 'systeminformation', 12282 * MIB],
      ['intel', 'systeminformation', 1024 * MIB],
    ])
    expect(notes).toEqual([])
  })

  it('is not asked on Windows when nvidia-smi answers', async () => {
    let asked = 0
    const gpus = await detectGpus([], {
      run: fakeRun({
        'nvidia-smi': {
          stdout:
            'index, name, memory.total [MiB], memory.free [MiB]\n0, NVIDIA GeForce RTX 4070, 12282, 11988\n',
        },
      }),
      platform: 'win32',
      graphics: async () => {
        asked++
        return WINDOWS
      },
    })
    expect(asked).toBe(0)
    expect(gpus).toEqual([expect.objectContaining({ name: 'NVIDIA GeForce RTX 4070', source: 'nvidia-smi' })])
  })

  it('is the fallback on a Mac whose system_profiler fails, and says so', async () => {
    const notes: string[] = []
    const gpus = await detectGpus(notes, {
      run: fakeRun({ system_profiler: { exitCode: 1, stderr: 'boom' } }),
      platform: 'darwin',
      graphics: async () => APPLE,
    })
    expect(gpus).toEqual([expect.objectContaining({ vendor: 'apple', unifiedMemory: true, gpuCores: 19 })])
    expect(notes.join('\n')).toMatch(/system_profiler failed; GPU list comes from systeminformation/)
  })

  it('gives an empty list and a note when systeminformation itself fails', async () => {
    const notes: string[] = []
    const gpus = await detectGpus(notes, {
      run: fakeRun({}),
      platform: 'win32',
      graphics: async () => {
        throw new Error('Get-CimInstance: access denied')
      },
    })
    expect(gpus).toEqual([])
    expect(notes.join('\n')).toMatch(
      /systeminformation could not list the graphics controllers: .*access denied/,
    )
  })
})
