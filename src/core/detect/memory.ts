import { readFileSync } from 'node:fs'
import { freemem, totalmem } from 'node:os'
import { posix } from 'node:path'
import si from 'systeminformation'
import type { MemoryInfo } from './types.js'

/** Reads a small text file, or undefined when it does not exist or cannot be read. */
export type ReadText = (path: string) => string | undefined

export function readTextSync(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return undefined
  }
}

export interface CgroupMemory {
  version: 1 | 2
  /** The tightest limit on the way from this process's cgroup up to the hierarchy's root. */
  limitBytes: number | null
  usageBytes: number | null
}

interface Mount {
  root: string
  mountPoint: string
  fsType: string
  superOptions: string[]
}

/** /proc/self/mountinfo: `id parent major:minor root mountpoint options [optional...] - fstype source superoptions`. */
export function parseMountinfo(text: string): Mount[] {
  const mounts: Mount[] = []
  for (const line of text.split('\n')) {
    const [left, right] = line.split(' - ')
    if (!left || !right) continue
    const fields = left.split(' ')
    const [fsType, , superOptions] = right.split(' ')
    const root = fields[3]
    const mountPoint = fields[4]
    if (!root || !mountPoint || !fsType) continue
    mounts.push({ root, mountPoint, fsType, superOptions: (superOptions ?? '').split(',') })
  }
  return mounts
}

/** cgroup v1 writes "no limit" as a huge page-aligned number (2^63 rounded down to a page). */
const UNLIMITED = 2 ** 62

function parseLimit(text: string | undefined): number | null {
  const value = text?.trim()
  if (!value || value === 'max') return null
  const n = Number(value)
  if (!Number.isFinite(n) || n < 0 || n >= UNLIMITED) return null
  return n
}

function parseUsage(text: string | undefined): number | null {
  const n = Number(text?.trim())
  return text !== undefined && Number.isFinite(n) && n >= 0 ? n : null
}

/** The directory of `cgroupPath` under a mount whose root is `mount.root` (non-root in some containers). */
function cgroupDir(mount: Mount, cgroupPath: string): string {
  let relative = cgroupPath
  if (mount.root !== '/' && (relative === mount.root || relative.startsWith(`${mount.root}/`))) {
    relative = relative.slice(mount.root.length)
  }
  return posix.join(mount.mountPoint, relative)
}

/** Walk from `dir` up to the mount point, taking the smallest limit found in `file`. */
function tightestLimit(read: ReadText, mountPoint: string, dir: string, file: string): number | null {
  let limit: number | null = null
  let current = dir
  for (;;) {
    const value = parseLimit(read(posix.join(current, file)))
    if (value !== null) limit = limit === null ? value : Math.min(limit, value)
    if (current === mountPoint || current.length <= mountPoint.length) break
    current = posix.dirname(current)
  }
  return limit
}

/**
 * This process's memory cgroup limit and usage, from /proc/self/cgroup and /proc/self/mountinfo.
 * v1 (the `memory` controller has its own hierarchy) wins over v2 on hybrid systems, because a v2
 * hierarchy beside a v1 memory controller has no memory controller of its own.
 */
export function cgroupMemory(read: ReadText): CgroupMemory | null {
  const cgroups = read('/proc/self/cgroup')
  const mountinfo = read('/proc/self/mountinfo')
  if (!cgroups || !mountinfo) return null
  const mounts = parseMountinfo(mountinfo)
  let v1Path: string | undefined
  let v2Path: string | undefined
  for (const line of cgroups.split('\n')) {
    const match = /^(\d+):([^:]*):(.*)$/.exec(line.trim())
    if (!match) continue
    const [, id, controllers, path] = match
    if (id === '0' && controllers === '' && path) v2Path = path
    else if (controllers?.split(',').includes('memory') && path) v1Path = path
  }
  const v1Mount = mounts.find((m) => m.fsType === 'cgroup' && m.superOptions.includes('memory'))
  if (v1Path !== undefined && v1Mount) {
    const dir = cgroupDir(v1Mount, v1Path)
    // A container often sees only its own cgroup at the mount point, with the full path not present.
    const leaf = read(posix.join(dir, 'memory.limit_in_bytes')) === undefined ? v1Mount.mountPoint : dir
    return {
      version: 1,
      limitBytes: tightestLimit(read, v1Mount.mountPoint, leaf, 'memory.limit_in_bytes'),
      usageBytes: parseUsage(read(posix.join(leaf, 'memory.usage_in_bytes'))),
    }
  }
  const v2Mount = mounts.find((m) => m.fsType === 'cgroup2')
  if (v2Path !== undefined && v2Mount) {
    const dir = cgroupDir(v2Mount, v2Path)
    const leaf = read(posix.join(dir, 'memory.current')) === undefined ? v2Mount.mountPoint : dir
    return {
      version: 2,
      limitBytes: tightestLimit(read, v2Mount.mountPoint, leaf, 'memory.max'),
      usageBytes: parseUsage(read(posix.join(leaf, 'memory.current'))),
    }
  }
  return null
}

/** What a model may use in RAM: available memory, tightened by what the cgroup still allows. */
export function usableMemory(availableBytes: number, cgroup: CgroupMemory | null): number {
  if (!cgroup || cgroup.limitBytes === null) return availableBytes
  const headroom = Math.max(0, cgroup.limitBytes - (cgroup.usageBytes ?? 0))
  return Math.min(availableBytes, headroom)
}

export async function detectMemory(notes: string[], read: ReadText = readTextSync): Promise<MemoryInfo> {
  const mem = await si.mem().catch(() => undefined)
  if (!mem) notes.push('memory: systeminformation failed; totals come from Node’s os module')
  const total = mem?.total || totalmem()
  const available = mem?.available || freemem()
  const cgroup = process.platform === 'linux' ? cgroupMemory(read) : null
  return {
    totalBytes: total,
    availableBytes: available,
    swapTotalBytes: mem ? mem.swaptotal : null,
    cgroupLimitBytes: cgroup?.limitBytes ?? null,
    cgroupUsageBytes: cgroup?.usageBytes ?? null,
    usableBytes: usableMemory(available, cgroup),
  }
}
