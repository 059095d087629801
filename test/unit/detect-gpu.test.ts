import { describe, expect, it } from 'vitest'
import { detectGpus, detectNvidia, type RunTool, type ToolResult } from '../../src/core/detect/gpu.js'
import {
  nvidiaInvalidField,
  parseDrmCard,
  parseNvidiaSmiCsv,
  parseRocmSmiJson,
  parseSystemProfiler,
  theoreticalBandwidthGBps,
} from '../../src/core/detect/gpu-parse.js'

const MIB = 1024 ** 2
const GIB = 1024 ** 3

// `nvidia-smi --query-gpu=<velo's fields> --format=csv,nounits` on one H100 SXM (driver 550).
const NVIDIA_ONE = `index, name, uuid, pci.bus_id, memory.total [MiB], memory.used [MiB], memory.free [MiB], driver_version, compute_cap, clocks.max.memory [MHz], memory.bus_width [bits]
0, NVIDIA H100 80GB HBM3, GPU-6c9b9c2d-2f0e-8f43-3f8e-5d3a0b3f1c11, 00000000:18:00.0, 81559, 4, 80994, 550.127.05, 9.0, 2619, 5120
`

// Two RTX 3090s, one busy; a driver old enough to have no memory.bus_width field.
const NVIDIA_TWO = `index, name, uuid, pci.bus_id, memory.total [MiB], memory.used [MiB], memory.free [MiB], driver_version, compute_cap, clocks.max.memory [MHz]
0, NVIDIA GeForce RTX 3090, GPU-0a1b2c3d-0000-1111-2222-333344445555, 00000000:01:00.0, 24576, 21409, 2890, 535.183.01, 8.6, 9751
1, NVIDIA GeForce RTX 3090, GPU-0a1b2c3d-0000-1111-2222-333344445556, 00000000:02:00.0, 24576, 312, 23987, 535.183.01, 8.6, 9751
`

// vGPU/GRID guests and some laptops report what they cannot read as [N/A] / [Not Supported].
const NVIDIA_MISSING = `index, name, uuid, pci.bus_id, memory.total [MiB], memory.used [MiB], memory.free [MiB], driver_version, compute_cap, clocks.max.memory [MHz], memory.bus_width [bits]
0, GRID A100D-20C, GPU-11111111-2222-3333-4444-555555555555, 00000000:02:00.0, 20480, [N/A], [N/A], 525.105.17, 8.0, [Not Supported], [N/A]
`

// With units (no nounits), as a person would run it.
const NVIDIA_UNITS = `name, memory.total [MiB], memory.free [MiB]
NVIDIA A10, 23028 MiB, 22503 MiB
`

describe('nvidia-smi CSV', () => {
  it('reads one GPU with every field and computes its theoretical bandwidth', () => {
    const [gpu, ...rest] = parseNvidiaSmiCsv(NVIDIA_ONE)
    expect(rest).toHaveLength(0)
    expect(gpu).toMatchObject({
      index: 0,
      vendor: 'nvidia',
      name: 'NVIDIA H100 80GB HBM3',
      uuid: 'GPU-6c9b9c2d-2f0e-8f43-3f8e-5d3a0b3f1c11',
      busId: '00000000:18:00.0',
      vramTotalBytes: 81559 * MIB,
      vramUsedBytes: 4 * MIB,
      vramFreeBytes: 80994 * MIB,
      driverVersion: '550.127.05',
      computeCapability: '9.0',
      memoryClockMhz: 2619,
      memoryBusWidthBits: 5120,
      unifiedMemory: false,
      source: 'nvidia-smi',
    })
    // H100 SXM's published peak is 3.35 TB/s.
    expect(gpu?.theoreticalBandwidthGBps).toBeCloseTo(3352.3, 1)
  })

  it('reads several GPUs, each with its own free memory, and no bandwidth without a bus width', () => {
    const gpus = parseNvidiaSmiCsv(NVIDIA_TWO)
    expect(gpus.map((g) => g.index)).toEqual([0, 1])
    expect(gpus.map((g) => g.vramFreeBytes)).toEqual([2890 * MIB, 23987 * MIB])
    expect(gpus.every((g) => g.memoryClockMhz === 9751)).toBe(true)
    expect(gpus.every((g) => g.memoryBusWidthBits === null && g.theoreticalBandwidthGBps === null)).toBe(true)
  })

  it('turns [N/A] and [Not Supported] into null instead of a number', () => {
    const [gpu] = parseNvidiaSmiCsv(NVIDIA_MISSING)
    expect(gpu).toMatchObject({
      name: 'GRID A100D-20C',
      vramTotalBytes: 20480 * MIB,
      vramUsedBytes: null,
      vramFreeBytes: null,
      memoryClockMhz: null,
      memoryBusWidthBits: null,
      theoreticalBandwidthGBps: null,
      computeCapability: '8.0',
    })
  })

  it('reads values that still carry units, and columns in any order', () => {
    const [gpu] = parseNvidiaSmiCsv(NVIDIA_UNITS)
    expect(gpu).toMatchObject({
      index: 0,
      name: 'NVIDIA A10',
      vramTotalBytes: 23028 * MIB,
      driverVersion: null,
    })
  })

  it('gives no GPUs for garbage, errors and a header alone', () => {
    expect(parseNvidiaSmiCsv('')).toEqual([])
    expect(
      parseNvidiaSmiCsv("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."),
    ).toEqual([])
    expect(parseNvidiaSmiCsv('index, name, memory.total [MiB]\n')).toEqual([])
    expect(parseNvidiaSmiCsv('index, name, memory.total [MiB]\n0, only-two-cells\n')).toEqual([])
    expect(parseNvidiaSmiCsv('\u0000\u0001binary')).toEqual([])
  })

  it('names the field an older nvidia-smi rejects', () => {
    expect(nvidiaInvalidField('Field "memory.bus_width" is not a valid field to query.\n\n')).toBe(
      'memory.bus_width',
    )
    expect(nvidiaInvalidField('something else')).toBeUndefined()
  })
})

function fakeRun(
  answers: Record<string, (args: string[]) => Partial<ToolResult>>,
): RunTool & { calls: string[][] } {
  const calls: string[][] = []
  const run = async (command: string, args: string[]): Promise<ToolResult> => {
    calls.push([command, ...args])
    const answer = answers[command]
    if (!answer) return { found: false, exitCode: null, stdout: '', stderr: '' }
    return { found: true, exitCode: 0, stdout: '', stderr: '', ...answer(args) }
  }
  return Object.assign(run, { calls })
}

describe('detectNvidia', () => {
  it('drops fields an older driver rejects and asks again', async () => {
    const run = fakeRun({
      'nvidia-smi': (args) =>
        args[0]?.includes('memory.bus_width')
          ? { exitCode: 2, stdout: 'Field "memory.bus_width" is not a valid field to query.\n' }
          : { stdout: NVIDIA_TWO },
    })
    const notes: string[] = []
    const gpus = await detectNvidia(run, notes)
    expect(gpus).toHaveLength(2)
    expect(run.calls).toHaveLength(2)
    expect(run.calls[1]?.[1]).not.toContain('memory.bus_width')
    expect(notes.join('\n')).toMatch(/bus width/)
  })

  it('is undefined when nvidia-smi is not installed, and a note when it fails', async () => {
    expect(await detectNvidia(fakeRun({}), [])).toBeUndefined()
    const notes: string[] = []
    const failing = fakeRun({
      'nvidia-smi': () => ({
        exitCode: 9,
        stdout: "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.",
      }),
    })
    expect(await detectNvidia(failing, notes)).toEqual([])
    expect(notes[0]).toMatch(/nvidia-smi failed \(exit 9\): NVIDIA-SMI has failed/)
  })
})

// `rocm-smi --showproductname --showmeminfo vram --showdriverversion --showbus --showuniqueid --json`
// on a two-GPU ROCm 6 machine: values are strings, sizes in bytes, the driver under "system".
const ROCM_TWO = JSON.stringify({
  card0: {
    'Card Series': 'Radeon RX 7900 XTX',
    'Card Model': '0x744c',
    'Card Vendor': 'Advanced Micro Devices, Inc. [AMD/ATI]',
    'Card SKU': 'D70301',
    'Subsystem ID': '0x5304',
    'Device Rev': '0xc8',
    'Node ID': '1',
    GUID: '45341',
    'GFX Version': 'gfx1100',
    'PCI Bus': '0000:03:00.0',
    'Unique ID': '0x97b40b7d4a2f1c3e',
    'VRAM Total Memory (B)': '25753026560',
    'VRAM Total Used Memory (B)': '1073741824',
  },
  card1: {
    'Card Series': 'N/A',
    'Card Model': '0x7551',
    'GFX Version': 'gfx1201',
    'PCI Bus': '0000:07:00.0',
    'VRAM Total Memory (B)': '34208743424',
    'VRAM Total Used Memory (B)': '29225381888',
  },
  system: { 'Driver version': '6.10.5' },
})

// Older rocm-smi (5.x) spells keys in lower case and has fewer of them.
const ROCM_OLD = `{"card0": {"Card series": "Instinct MI210", "Card model": "0x0c34", "VRAM Total Memory (B)": "68702699520", "VRAM Total Used Memory (B)": "10960896"}}`

describe('rocm-smi JSON', () => {
  it('reads every card with VRAM in bytes and the system driver version', () => {
    const gpus = parseRocmSmiJson(ROCM_TWO)
    expect(gpus).toHaveLength(2)
    expect(gpus[0]).toMatchObject({
      index: 0,
      vendor: 'amd',
      name: 'Radeon RX 7900 XTX',
      vramTotalBytes: 25753026560,
      vramUsedBytes: 1073741824,
      vramFreeBytes: 25753026560 - 1073741824,
      computeCapability: 'gfx1100',
      busId: '0000:03:00.0',
      driverVersion: '6.10.5',
      source: 'rocm-smi',
      theoreticalBandwidthGBps: null,
    })
    // "N/A" as the series: fall back to the model id rather than print N/A as a name.
    expect(gpus[1]?.name).toBe('0x7551')
  })

  it('reads the older lower-case spelling', () => {
    expect(parseRocmSmiJson(ROCM_OLD)[0]).toMatchObject({
      name: 'Instinct MI210',
      vramTotalBytes: 68702699520,
    })
  })

  it('gives no GPUs for garbage and for the "no GPU" message', () => {
    expect(parseRocmSmiJson('')).toEqual([])
    expect(parseRocmSmiJson('WARNING: No AMD GPUs specified')).toEqual([])
    expect(parseRocmSmiJson('[1,2]')).toEqual([])
    expect(parseRocmSmiJson('{"card0": "flat"}')).toEqual([])
    expect(parseRocmSmiJson('{"card0": {"x": "1"}}')).toEqual([])
  })
})

// `system_profiler SPHardwareDataType SPDisplaysDataType -json` on a MacBook Pro M2 Pro.
const MAC_M2_PRO = `{
  "SPDisplaysDataType" : [
    {
      "_name" : "Apple M2 Pro",
      "spdisplays_mtlgpufamilysupport" : "spdisplays_metal3",
      "spdisplays_ndrvs" : [
        {
          "_name" : "Color LCD",
          "_spdisplays_display-product-id" : "a050",
          "spdisplays_main" : "spdisplays_yes",
          "spdisplays_pixelresolution" : "spdisplays_3456x2234Retina"
        }
      ],
      "spdisplays_vendor" : "sppci_vendor_Apple",
      "sppci_bus" : "spdisplays_builtin",
      "sppci_cores" : "19",
      "sppci_device_type" : "spdisplays_gpu",
      "sppci_model" : "Apple M2 Pro"
    }
  ],
  "SPHardwareDataType" : [
    {
      "_name" : "hardware_overview",
      "activation_lock_status" : "activation_lock_disabled",
      "boot_rom_version" : "10151.61.4",
      "chip_type" : "Apple M2 Pro",
      "machine_model" : "Mac14,10",
      "machine_name" : "MacBook Pro",
      "number_processors" : "proc 12:8:4",
      "os_loader_version" : "10151.61.4",
      "physical_memory" : "32 GB",
      "platform_UUID" : "00000000-0000-0000-0000-000000000000",
      "serial_number" : "XXXXXXXXXX"
    }
  ]
}`

// An Intel MacBook Pro with an integrated Intel GPU and a discrete AMD one.
const MAC_INTEL = `{
  "SPDisplaysDataType" : [
    { "_name" : "Intel UHD Graphics 630", "spdisplays_vram_shared" : "1536 MB", "spdisplays_vendor" : "Intel",
      "sppci_bus" : "spdisplays_builtin", "sppci_device_type" : "spdisplays_gpu", "sppci_model" : "Intel UHD Graphics 630" },
    { "_name" : "AMD Radeon Pro 5500M", "spdisplays_vram" : "8 GB", "spdisplays_vendor" : "sppci_vendor_amd",
      "sppci_bus" : "spdisplays_pcie_device", "sppci_device_type" : "spdisplays_gpu", "sppci_model" : "AMD Radeon Pro 5500M" }
  ],
  "SPHardwareDataType" : [
    { "_name" : "hardware_overview", "cpu_type" : "8-Core Intel Core i9", "machine_model" : "MacBookPro16,1",
      "number_processors" : 8, "physical_memory" : "16 GB" }
  ]
}`

describe('system_profiler', () => {
  it('reads Apple Silicon as one unified-memory GPU with its core count', () => {
    const profile = parseSystemProfiler(MAC_M2_PRO)
    expect(profile.chip).toBe('Apple M2 Pro')
    expect(profile.memoryBytes).toBe(32 * GIB)
    expect(profile.gpus).toHaveLength(1)
    expect(profile.gpus[0]).toMatchObject({
      vendor: 'apple',
      name: 'Apple M2 Pro',
      unifiedMemory: true,
      gpuCores: 19,
      vramTotalBytes: null,
      source: 'system_profiler',
    })
  })

  it('reads an Intel Mac’s discrete GPU with its VRAM', () => {
    const profile = parseSystemProfiler(MAC_INTEL)
    expect(profile.chip).toBe('8-Core Intel Core i9')
    expect(profile.gpus.map((g) => [g.vendor, g.unifiedMemory, g.vramTotalBytes])).toEqual([
      ['intel', false, 1536 * MIB],
      ['amd', false, 8 * GIB],
    ])
  })

  it('gives nothing for garbage', () => {
    expect(parseSystemProfiler('not json')).toEqual({ gpus: [], chip: null, memoryBytes: null })
    expect(parseSystemProfiler('{"SPDisplaysDataType": "x"}').gpus).toEqual([])
  })
})

describe('sysfs and the GPU probe', () => {
  it('reads an amdgpu card’s VRAM from sysfs and leaves out BMC display adapters', () => {
    const amd = parseDrmCard({
      card: 'card1',
      vendor: '0x1002\n',
      device: '0x744c\n',
      vramTotal: '25753026560\n',
      vramUsed: '1048576\n',
      productName: undefined,
      uevent: 'DRIVER=amdgpu\nPCI_CLASS=30000\nPCI_SLOT_NAME=0000:03:00.0\n',
    })
    expect(amd).toMatchObject({
      index: 1,
      vendor: 'amd',
      vramTotalBytes: 25753026560,
      vramFreeBytes: 25753026560 - 1048576,
      busId: '0000:03:00.0',
      source: 'sysfs',
    })
    const aspeed = parseDrmCard({
      card: 'card0',
      vendor: '0x1a03',
      device: '0x2000',
      vramTotal: undefined,
      vramUsed: undefined,
      productName: undefined,
      uevent: undefined,
    })
    expect(aspeed).toBeUndefined()
  })

  it('computes the theoretical bandwidth only from both numbers', () => {
    // A100 40GB: 1215 MHz HBM2 on a 5120-bit bus, published as 1555 GB/s.
    expect(theoreticalBandwidthGBps(1215, 5120)).toBeCloseTo(1555.2, 1)
    expect(theoreticalBandwidthGBps(null, 5120)).toBeNull()
    expect(theoreticalBandwidthGBps(1215, null)).toBeNull()
  })

  it('reports an empty list, not an error, on a Linux machine with no GPU tools and no GPUs', async () => {
    const notes: string[] = []
    const gpus = await detectGpus(notes, { run: fakeRun({}), read: () => undefined, platform: 'linux' })
    expect(gpus).toEqual([])
  })

  it('uses rocm-smi output that is garbage as no GPU and says so', async () => {
    const notes: string[] = []
    const run = fakeRun({ 'rocm-smi': () => ({ stdout: '====== ROCm System Management Interface ======' }) })
    const gpus = await detectGpus(notes, { run, read: () => undefined, platform: 'linux' })
    expect(gpus).toEqual([])
    expect(notes.join('\n')).toMatch(/rocm-smi gave no readable GPU list/)
  })

  it('puts NVIDIA and AMD GPUs in one list', async () => {
    const run = fakeRun({
      'nvidia-smi': () => ({ stdout: NVIDIA_ONE }),
      'rocm-smi': () => ({ stdout: ROCM_OLD }),
    })
    const gpus = await detectGpus([], { run, read: () => undefined, platform: 'linux' })
    expect(gpus.map((g) => [g.vendor, g.name])).toEqual([
      ['nvidia', 'NVIDIA H100 80GB HBM3'],
      ['amd', 'Instinct MI210'],
    ])
  })

  it('reads a Mac through system_profiler', async () => {
    const notes: string[] = []
    const run = fakeRun({ system_profiler: () => ({ stdout: MAC_M2_PRO }) })
    const gpus = await detectGpus(notes, { run, platform: 'darwin' })
    expect(gpus[0]?.unifiedMemory).toBe(true)
    expect(notes.join('\n')).toMatch(/unified memory/)
  })
})
