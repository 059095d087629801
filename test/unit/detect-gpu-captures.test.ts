/**
 * The GPU parsers against outputs captured on real machines (test/fixtures/detect/README.md says
 * where each one comes from). The hand-written cases in detect-gpu.test.ts cover velo's own query;
 * these make sure the parsers read what the tools really print.
 */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { parseNvidiaSmiCsv, parseRocmSmiJson, parseSystemProfiler } from '../../src/core/detect/gpu-parse.js'

const MIB = 1024 ** 2

function capture(name: string): string {
  return readFileSync(new URL(`../fixtures/detect/${name}`, import.meta.url), 'utf8')
}

describe('nvidia-smi captures', () => {
  it('reads one Tesla T4 from a header-driven query in another field order', () => {
    const gpus = parseNvidiaSmiCsv(capture('nvidia-smi-t4-one-gpu.csv'))
    expect(gpus).toHaveLength(1)
    expect(gpus[0]).toMatchObject({
      index: 0,
      vendor: 'nvidia',
      name: 'Tesla T4',
      uuid: 'GPU-bbd3f1b1-660a-44b0-911f-169e11579607',
      busId: '00000000:AF:00.0',
      driverVersion: '440.100',
      vramTotalBytes: 15109 * MIB,
      vramUsedBytes: 2003 * MIB,
      vramFreeBytes: 13106 * MIB,
      // Not asked for in this capture: null, not a guess.
      computeCapability: null,
      memoryClockMhz: null,
      memoryBusWidthBits: null,
      theoreticalBandwidthGBps: null,
      source: 'nvidia-smi',
    })
  })

  it('reads eight GPUs without an index column, numbering them in order', () => {
    const gpus = parseNvidiaSmiCsv(capture('nvidia-smi-8x-rtx3090.csv'))
    expect(gpus.map((g) => g.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7])
    expect(gpus.every((g) => g.name === 'NVIDIA GeForce RTX 3090')).toBe(true)
    expect(gpus.every((g) => g.vramTotalBytes === 24576 * MIB)).toBe(true)
    expect(gpus.map((g) => (g.vramFreeBytes ?? 0) / MIB)).toEqual([
      11279, 3057, 2591, 2889, 3787, 1473, 9431, 21409,
    ])
    expect(gpus.every((g) => g.vramUsedBytes === null && g.driverVersion === null)).toBe(true)
  })

  it('reads a laptop GPU whose driver reports a field as [N/A]', () => {
    const [gpu, ...rest] = parseNvidiaSmiCsv(capture('nvidia-smi-rtx4060-laptop-na.csv'))
    expect(rest).toHaveLength(0)
    expect(gpu).toMatchObject({
      name: 'NVIDIA GeForce RTX 4060 Laptop GPU',
      vramTotalBytes: 8188 * MIB,
      vramUsedBytes: 1048 * MIB,
      vramFreeBytes: 6910 * MIB,
      driverVersion: '566.26',
    })
  })

  it('gives no GPUs when a capture is cut or mangled', () => {
    const t4 = capture('nvidia-smi-t4-one-gpu.csv')
    // Header only, as when the driver lists no devices.
    expect(parseNvidiaSmiCsv(t4.split('\n')[0] ?? '')).toEqual([])
    // A row cut short (a truncated pipe) is not read as a GPU with shifted columns.
    expect(parseNvidiaSmiCsv(t4.slice(0, t4.indexOf('P0')))).toEqual([])
    // Rows without their header mean nothing.
    expect(parseNvidiaSmiCsv(t4.split('\n').slice(1).join('\n'))).toEqual([])
  })
})

describe('rocm-smi captures', () => {
  it('reads a Radeon RX 7900 XT with its VRAM in bytes', () => {
    const gpus = parseRocmSmiJson(capture('rocm-smi-rx7900xt.json.txt'))
    expect(gpus).toHaveLength(1)
    expect(gpus[0]).toMatchObject({
      index: 0,
      vendor: 'amd',
      name: 'Radeon RX 7900 XT',
      vramTotalBytes: 21458059264,
      vramUsedBytes: 27856896,
      vramFreeBytes: 21458059264 - 27856896,
      computeCapability: 'gfx1100',
      // --showdriverversion was not part of this capture.
      driverVersion: null,
      source: 'rocm-smi',
    })
  })

  it('reads an MI250X from --showproductname alone, with VRAM unknown', () => {
    const [gpu] = parseRocmSmiJson(capture('rocm-smi-mi250x-productname.json.txt'))
    expect(gpu).toMatchObject({
      name: 'AMD INSTINCT MI200 (MCM) OAM LC MBA HPE C2',
      computeCapability: 'gfx9010',
      vramTotalBytes: null,
      vramFreeBytes: null,
    })
  })

  it('gives no GPUs for a capture cut in the middle of its JSON', () => {
    const text = capture('rocm-smi-rx7900xt.json.txt')
    expect(parseRocmSmiJson(text.slice(0, text.length / 2))).toEqual([])
  })
})

describe('system_profiler captures', () => {
  it('reads an M1 as one unified-memory GPU named by its model, not its internal item name', () => {
    const profile = parseSystemProfiler(capture('system-profiler-m1-displays.json.txt'))
    expect(profile.gpus).toHaveLength(1)
    expect(profile.gpus[0]).toMatchObject({
      index: 0,
      vendor: 'apple',
      name: 'Apple M1',
      unifiedMemory: true,
      gpuCores: 7,
      vramTotalBytes: null,
      source: 'system_profiler',
    })
    // Only SPDisplaysDataType was captured: the chip and memory come from SPHardwareDataType.
    expect(profile.chip).toBeNull()
    expect(profile.memoryBytes).toBeNull()
  })

  it('gives nothing for a capture cut in the middle of its JSON', () => {
    const text = capture('system-profiler-m1-displays.json.txt')
    expect(parseSystemProfiler(text.slice(0, 200))).toEqual({ gpus: [], chip: null, memoryBytes: null })
  })
})
