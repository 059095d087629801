import { readdir, readFile } from 'node:fs/promises'

/**
 * Other work on the machine during a trial. On a shared machine a trial that overlaps someone
 * else's burst of CPU is not a measurement of the configuration, it is a measurement of the
 * burst: llama.cpp's threads wait for each other at every step, so one stolen core can cut
 * throughput several times over. Linux's /proc tells how much CPU every process outside velo's
 * own process tree used, so such a trial can be recognised and repeated once the machine is
 * quiet again. Elsewhere (no /proc) nothing is checked.
 */

/** Clock ticks per second of /proc's CPU times (USER_HZ: 100 on every Linux platform velo runs on). */
const TICKS_PER_SECOND = 100

export interface ProcEntry {
  pid: number
  ppid: number
  /** utime + stime + cutime + cstime: its own CPU time and that of the children it reaped. */
  ticks: number
}

/** One line of /proc/PID/stat. The command name is in parentheses and may hold spaces and parentheses. */
export function parseProcStat(text: string): ProcEntry | undefined {
  const open = text.indexOf('(')
  const close = text.lastIndexOf(')')
  if (open < 0 || close < open) return undefined
  const pid = Number(text.slice(0, open).trim())
  // Fields after the name: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime ...
  const fields = text
    .slice(close + 1)
    .trim()
    .split(/\s+/)
  const ppid = Number(fields[1])
  const times = [fields[11], fields[12], fields[13], fields[14]].map(Number)
  if (!Number.isInteger(pid) || !Number.isInteger(ppid) || times.some((t) => !Number.isFinite(t))) {
    return undefined
  }
  return { pid, ppid, ticks: times.reduce((a, b) => a + b, 0) }
}

/** CPU ticks of `root` and every process it started (its tree), children it reaped included. */
export function treeTicks(entries: readonly ProcEntry[], root: number): number {
  const children = new Map<number, ProcEntry[]>()
  for (const entry of entries) {
    const list = children.get(entry.ppid) ?? []
    list.push(entry)
    children.set(entry.ppid, list)
  }
  let ticks = 0
  const seen = new Set<number>()
  const stack = entries.filter((entry) => entry.pid === root)
  while (stack.length > 0) {
    const entry = stack.pop()
    if (!entry || seen.has(entry.pid)) continue
    seen.add(entry.pid)
    ticks += entry.ticks
    stack.push(...(children.get(entry.pid) ?? []))
  }
  return ticks
}

/** Busy ticks of all CPUs together from the first line of /proc/stat (everything but idle and iowait). */
export function parseSystemBusy(text: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith('cpu '))
  if (!line) return undefined
  const values = line.trim().split(/\s+/).slice(1).map(Number)
  if (values.length < 4 || values.some((v) => !Number.isFinite(v))) return undefined
  // user nice system idle iowait irq softirq steal [guest guest_nice: already in user and nice]
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = values
  return user + nice + system + irq + softirq + steal
}

export interface CpuSnapshot {
  atMs: number
  /** Busy ticks of the whole machine. */
  system: number
  /** Ticks of this process's tree. */
  own: number
}

/** The machine's busy CPU time and this process tree's; undefined where there is no /proc. */
export async function snapshotCpu(root = process.pid): Promise<CpuSnapshot | undefined> {
  let names: string[]
  let system: number | undefined
  try {
    system = parseSystemBusy(await readFile('/proc/stat', 'utf8'))
    names = await readdir('/proc')
  } catch {
    return undefined
  }
  if (system === undefined) return undefined
  const entries: ProcEntry[] = []
  await Promise.all(
    names
      .filter((name) => /^\d+$/.test(name))
      .map(async (name) => {
        try {
          const entry = parseProcStat(await readFile(`/proc/${name}/stat`, 'utf8'))
          if (entry) entries.push(entry)
        } catch {
          // The process ended between the listing and the read.
        }
      }),
  )
  return { atMs: performance.now(), system, own: treeTicks(entries, root) }
}

/**
 * Cores that processes outside this tree kept busy between two snapshots, on average: the
 * machine's busy time less this tree's. A child of ours that started and ended in between (a
 * trial's llama-server) is in our reaped-children time, so it counts as ours.
 */
export function otherCores(before: CpuSnapshot, after: CpuSnapshot): number {
  const seconds = (after.atMs - before.atMs) / 1000
  if (seconds <= 0) return 0
  const ticks = after.system - before.system - (after.own - before.own)
  return Math.max(0, ticks / TICKS_PER_SECOND / seconds)
}

export interface QuietOptions {
  /** Other processes may keep at most this many cores busy during a trial. */
  maxOtherCores: number
  /** How long to wait for a quiet machine before each attempt; after it, the trial runs anyway. */
  waitMs: number
  /** Attempts after the first when other work disturbed it. */
  retries: number
  onWait?: (otherCores: number) => void
  onRetry?: (otherCores: number, attempt: number) => void
}

/**
 * `velo optimize --wait-idle`: others may use a quarter of a core (a shell, an editor) but not a
 * test run or a build; wait up to two minutes for that before a trial, and measure a disturbed
 * trial at most twice more.
 */
export const WAIT_IDLE_DEFAULTS = { maxOtherCores: 0.25, waitMs: 120_000, retries: 2 } as const

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Wait in one-second windows until other processes use at most `maxOtherCores`, or `waitMs` passes. */
export async function waitForQuiet(options: QuietOptions): Promise<number | undefined> {
  const deadline = performance.now() + options.waitMs
  let warned = false
  for (;;) {
    const before = await snapshotCpu()
    if (!before) return undefined
    await sleep(1000)
    const after = await snapshotCpu()
    if (!after) return undefined
    const cores = otherCores(before, after)
    if (cores <= options.maxOtherCores || performance.now() >= deadline) return cores
    if (!warned) options.onWait?.(cores)
    warned = true
  }
}

export interface Guarded<T> {
  value: T
  /** Cores other processes used during the kept attempt (undefined without /proc). */
  otherCores: number | undefined
  attempts: number
}

/**
 * Run `measure` on a quiet machine: wait for quiet, measure, and measure again (up to `retries`
 * times) when other processes took more than `maxOtherCores` meanwhile. The attempt disturbed
 * least is kept, so a machine that never goes quiet still yields a result, marked by its figure.
 */
export async function measureQuietly<T>(
  measure: () => Promise<T>,
  options: QuietOptions,
): Promise<Guarded<T>> {
  let kept: Guarded<T> | undefined
  for (let attempt = 1; attempt <= options.retries + 1; attempt++) {
    await waitForQuiet(options)
    const before = await snapshotCpu()
    const value = await measure()
    const after = await snapshotCpu()
    const cores = before && after ? otherCores(before, after) : undefined
    if (!kept || (cores !== undefined && (kept.otherCores ?? 0) > cores)) {
      kept = { value, otherCores: cores, attempts: attempt }
    }
    kept.attempts = attempt
    if (cores === undefined || cores <= options.maxOtherCores) break
    if (attempt <= options.retries) options.onRetry?.(cores, attempt)
  }
  if (!kept) throw new Error('measureQuietly: no attempt ran')
  return kept
}
