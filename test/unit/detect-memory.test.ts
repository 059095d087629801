import { describe, expect, it } from 'vitest'
import { cgroupMemory, parseMountinfo, usableMemory } from '../../src/core/detect/memory.js'

const GIB = 1024 ** 3
const V1_UNLIMITED = '9223372036854771712\n'

function files(map: Record<string, string>): (path: string) => string | undefined {
  return (path) => map[path]
}

// A hybrid host (cgroup v1 controllers plus a v2 mount), the memory controller nested two levels.
const HYBRID_MOUNTINFO = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
const HYBRID_CGROUP = `9:name=systemd:/
4:memory:/process_api/5f6741bc
1:cpu:/
0::/
`

// A Docker container on cgroup v2 with its own namespace: `0::/`, limit in memory.max.
const V2_MOUNTINFO = `1200 1100 0:30 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup rw,nsdelegate,memory_recursiveprot
`

// A systemd service on a cgroup v2 host (no namespace): the path is the full one.
const V2_HOST_CGROUP = '0::/system.slice/ollama.service\n'
const V2_HOST_MOUNTINFO =
  '25 30 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n'

// A Docker container on cgroup v1 without a namespace: mount root is the container's own cgroup.
const V1_DOCKER_MOUNTINFO =
  '700 650 0:40 /docker/0123abcd /sys/fs/cgroup/memory ro,nosuid,nodev,noexec,relatime master:20 - cgroup cgroup rw,memory\n'
const V1_DOCKER_CGROUP = '11:memory:/docker/0123abcd\n'

describe('cgroup memory limits', () => {
  it('parses mountinfo, optional fields included', () => {
    const [mount] = parseMountinfo(V2_HOST_MOUNTINFO)
    expect(mount).toEqual({
      root: '/',
      mountPoint: '/sys/fs/cgroup',
      fsType: 'cgroup2',
      superOptions: ['rw', 'nsdelegate'],
    })
  })

  it('v1: takes the tightest limit on the way up, and "unlimited" is no limit', () => {
    const read = files({
      '/proc/self/cgroup': HYBRID_CGROUP,
      '/proc/self/mountinfo': HYBRID_MOUNTINFO,
      '/sys/fs/cgroup/memory/process_api/5f6741bc/memory.limit_in_bytes': V1_UNLIMITED,
      '/sys/fs/cgroup/memory/process_api/5f6741bc/memory.usage_in_bytes': '1106399232\n',
      '/sys/fs/cgroup/memory/process_api/memory.limit_in_bytes': `${8 * GIB}\n`,
      '/sys/fs/cgroup/memory/memory.limit_in_bytes': V1_UNLIMITED,
    })
    expect(cgroupMemory(read)).toEqual({ version: 1, limitBytes: 8 * GIB, usageBytes: 1106399232 })
  })

  it('v1: no limit anywhere (this machine’s case) is null', () => {
    const read = files({
      '/proc/self/cgroup': HYBRID_CGROUP,
      '/proc/self/mountinfo': HYBRID_MOUNTINFO,
      '/sys/fs/cgroup/memory/process_api/5f6741bc/memory.limit_in_bytes': V1_UNLIMITED,
      '/sys/fs/cgroup/memory/process_api/5f6741bc/memory.usage_in_bytes': '1106399232\n',
      '/sys/fs/cgroup/memory/memory.limit_in_bytes': V1_UNLIMITED,
    })
    expect(cgroupMemory(read)).toMatchObject({ version: 1, limitBytes: null })
  })

  it('v1 in a container whose mount root is its own cgroup', () => {
    const read = files({
      '/proc/self/cgroup': V1_DOCKER_CGROUP,
      '/proc/self/mountinfo': V1_DOCKER_MOUNTINFO,
      '/sys/fs/cgroup/memory/memory.limit_in_bytes': `${4 * GIB}\n`,
      '/sys/fs/cgroup/memory/memory.usage_in_bytes': `${GIB}\n`,
    })
    expect(cgroupMemory(read)).toEqual({ version: 1, limitBytes: 4 * GIB, usageBytes: GIB })
  })

  it('v2 in a container: memory.max at the mount point', () => {
    const read = files({
      '/proc/self/cgroup': '0::/\n',
      '/proc/self/mountinfo': V2_MOUNTINFO,
      '/sys/fs/cgroup/memory.max': `${16 * GIB}\n`,
      '/sys/fs/cgroup/memory.current': `${2 * GIB}\n`,
    })
    expect(cgroupMemory(read)).toEqual({ version: 2, limitBytes: 16 * GIB, usageBytes: 2 * GIB })
  })

  it('v2 on a host: "max" at the leaf, a slice limit above it', () => {
    const read = files({
      '/proc/self/cgroup': V2_HOST_CGROUP,
      '/proc/self/mountinfo': V2_HOST_MOUNTINFO,
      '/sys/fs/cgroup/system.slice/ollama.service/memory.max': 'max\n',
      '/sys/fs/cgroup/system.slice/ollama.service/memory.current': '524288000\n',
      '/sys/fs/cgroup/system.slice/memory.max': `${12 * GIB}\n`,
    })
    expect(cgroupMemory(read)).toEqual({ version: 2, limitBytes: 12 * GIB, usageBytes: 524288000 })
  })

  it('is null without cgroup files, and ignores garbage values', () => {
    expect(cgroupMemory(files({}))).toBeNull()
    const read = files({
      '/proc/self/cgroup': '0::/\n',
      '/proc/self/mountinfo': V2_MOUNTINFO,
      '/sys/fs/cgroup/memory.max': 'lots\n',
      '/sys/fs/cgroup/memory.current': 'some\n',
    })
    expect(cgroupMemory(read)).toEqual({ version: 2, limitBytes: null, usageBytes: null })
  })

  it('the budget for a model is what the cgroup still allows, when that is less than available', () => {
    expect(usableMemory(20 * GIB, null)).toBe(20 * GIB)
    expect(usableMemory(20 * GIB, { version: 2, limitBytes: 8 * GIB, usageBytes: 2 * GIB })).toBe(6 * GIB)
    expect(usableMemory(4 * GIB, { version: 2, limitBytes: 8 * GIB, usageBytes: 2 * GIB })).toBe(4 * GIB)
    expect(usableMemory(4 * GIB, { version: 1, limitBytes: GIB, usageBytes: 2 * GIB })).toBe(0)
  })
})
