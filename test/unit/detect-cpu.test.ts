import { describe, expect, it } from 'vitest'
import { featuresFromFlags, parseCpuinfo } from '../../src/core/detect/cpu.js'

// /proc/cpuinfo of a 2-core, 4-thread Intel Sapphire Rapids VM (flags shortened to the interesting ones).
const X86 = `processor	: 0
vendor_id	: GenuineIntel
cpu family	: 6
model		: 143
model name	: Intel(R) Xeon(R) Platinum 8480C
physical id	: 0
siblings	: 4
core id		: 0
cpu cores	: 2
flags		: fpu vme sse sse2 ssse3 fma cx16 sse4_1 sse4_2 avx f16c avx2 avx512f avx512dq avx512bw avx512vl avx512_vnni avx512_bf16 avx_vnni amx_bf16 amx_tile amx_int8

processor	: 1
model name	: Intel(R) Xeon(R) Platinum 8480C
physical id	: 0
core id		: 0
flags		: fpu vme sse sse2 ssse3 fma cx16 sse4_1 sse4_2 avx f16c avx2 avx512f avx512dq avx512bw avx512vl avx512_vnni avx512_bf16 avx_vnni amx_bf16 amx_tile amx_int8

processor	: 2
model name	: Intel(R) Xeon(R) Platinum 8480C
physical id	: 0
core id		: 1
flags		: fpu vme sse

processor	: 3
model name	: Intel(R) Xeon(R) Platinum 8480C
physical id	: 0
core id		: 1
flags		: fpu vme sse
`

// /proc/cpuinfo of an AWS Graviton3 (Neoverse V1): "Features", no model name, no core topology.
const ARM = `processor	: 0
BogoMIPS	: 2100.00
Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs paca pacg dcpodp svei8mm svebf16 i8mm bf16 dgh rng
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x1
CPU part	: 0xd40
CPU revision	: 1

processor	: 1
BogoMIPS	: 2100.00
Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs paca pacg dcpodp svei8mm svebf16 i8mm bf16 dgh rng
CPU implementer	: 0x41
CPU part	: 0xd40
`

// A Raspberry Pi 4 (Cortex-A72): NEON, no dot product.
const PI4 = `processor	: 0
model name	: ARMv7 Processor rev 3 (v7l)
Features	: half thumb fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt vfpd32 lpae evtstrm crc32
Hardware	: BCM2711
`

describe('/proc/cpuinfo', () => {
  it('reads the model, the flags and the physical core count on x86', () => {
    const parsed = parseCpuinfo(X86)
    expect(parsed.modelName).toBe('Intel(R) Xeon(R) Platinum 8480C')
    expect(parsed.logicalCores).toBe(4)
    expect(parsed.physicalCores).toBe(2)
    expect(parsed.flags.has('amx_tile')).toBe(true)
    expect(featuresFromFlags(parsed.flags, 'x64')).toEqual({
      avx: true,
      avx2: true,
      avx512: true,
      avx512_vnni: true,
      avx512_bf16: true,
      avx_vnni: true,
      amx: true,
      f16c: true,
      fma: true,
      neon: false,
      dotprod: false,
      i8mm: false,
      sve: false,
    })
  })

  it('reads ARM Features and leaves the core topology unknown when the kernel does not list it', () => {
    const parsed = parseCpuinfo(ARM)
    expect(parsed.modelName).toBeNull()
    expect(parsed.logicalCores).toBe(2)
    expect(parsed.physicalCores).toBeNull()
    expect(featuresFromFlags(parsed.flags, 'arm64')).toMatchObject({
      neon: true,
      dotprod: true,
      i8mm: true,
      sve: true,
      avx: false,
      avx2: false,
      amx: false,
    })
  })

  it('reads a 32-bit ARM board: NEON without dot product', () => {
    const parsed = parseCpuinfo(PI4)
    expect(parsed.modelName).toBe('ARMv7 Processor rev 3 (v7l)')
    expect(featuresFromFlags(parsed.flags, 'arm')).toMatchObject({ neon: true, dotprod: false, sve: false })
  })

  it('an older x86 CPU lacks what it does not list', () => {
    const parsed = parseCpuinfo('processor : 0\nflags : fpu sse sse2 avx\n')
    expect(featuresFromFlags(parsed.flags, 'x64')).toMatchObject({
      avx: true,
      avx2: false,
      avx512: false,
      fma: false,
    })
  })

  it('says "unknown" (null), not "no", when there are no flags to read', () => {
    const x86 = featuresFromFlags(parseCpuinfo('garbage\n\u0000').flags, 'x64')
    expect(x86.avx2).toBeNull()
    expect(x86.neon).toBe(false)
    const arm = featuresFromFlags(new Set(), 'arm64')
    // AArch64 always has NEON; the optional extensions stay unknown.
    expect(arm.neon).toBe(true)
    expect(arm.dotprod).toBeNull()
    expect(arm.avx).toBe(false)
  })
})
