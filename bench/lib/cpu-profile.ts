/**
 * Reading a V8 `.cpuprofile` (what `node --cpu-prof` writes) down to where the time went: the
 * functions with the most self time, and the same time summed by origin (velo's code, Node's
 * internals, each npm package), so `npm run perf -- --cpu-prof` can say what to cut.
 */

export interface CpuProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber?: number }
  hitCount?: number
  children?: number[]
}

export interface CpuProfile {
  nodes: CpuProfileNode[]
  /** Microseconds. */
  startTime: number
  endTime: number
  samples?: number[]
  /** Microseconds between a sample and the one before it. */
  timeDeltas?: number[]
}

export interface HotFunction {
  name: string
  location: string
  origin: string
  selfMs: number
  /** Share of the busy (non-idle) time. */
  share: number
}

export interface ProfileSummary {
  totalMs: number
  idleMs: number
  busyMs: number
  gcMs: number
  top: HotFunction[]
  /**
   * Self time charged to the nearest frame of velo or an npm package on the stack: Node's and V8's
   * own work (socket writes, stream plumbing) counted against the code that asked for it.
   */
  owners: HotFunction[]
  byOrigin: { origin: string; selfMs: number; share: number }[]
}

/** Where a function comes from: `velo`, `node`, an npm package name, or a V8 pseudo-frame. */
export function originOf(url: string, functionName: string): string {
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)'
  if (url.startsWith('node:')) return 'node'
  const at = url.lastIndexOf('/node_modules/')
  if (at >= 0) {
    const rest = url.slice(at + '/node_modules/'.length).split('/')
    return rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1] ?? ''}` : (rest[0] ?? 'other')
  }
  if (/\/(dist|src|bin)\//.test(url)) return 'velo'
  return 'other'
}

function shortLocation(url: string, line: number, root: string): string {
  let path = url.replace(/^file:\/\//, '')
  const at = path.lastIndexOf('/node_modules/')
  if (at >= 0) path = path.slice(at + '/node_modules/'.length)
  else if (root && path.startsWith(root)) path = path.slice(root.length).replace(/^\//, '')
  return path ? `${path}:${line + 1}` : ''
}

/** Self time per profile node (ms), from the sample timeline when present, else from hit counts. */
function selfTimes(profile: CpuProfile): Map<number, number> {
  const self = new Map<number, number>()
  const samples = profile.samples ?? []
  const deltas = profile.timeDeltas ?? []
  if (samples.length > 0 && deltas.length === samples.length) {
    // A sample stands for the time until the next one (as DevTools draws it).
    for (let i = 0; i < samples.length; i++) {
      const node = samples[i] as number
      const us = i + 1 < deltas.length ? (deltas[i + 1] as number) : 0
      self.set(node, (self.get(node) ?? 0) + Math.max(0, us) / 1000)
    }
    return self
  }
  const hits = profile.nodes.reduce((sum, node) => sum + (node.hitCount ?? 0), 0)
  const perHit = hits > 0 ? (profile.endTime - profile.startTime) / 1000 / hits : 0
  for (const node of profile.nodes) self.set(node.id, (node.hitCount ?? 0) * perHit)
  return self
}

export function summarizeCpuProfile(
  profile: CpuProfile,
  options: { top?: number; root?: string } = {},
): ProfileSummary {
  const self = selfTimes(profile)
  const parent = new Map<number, CpuProfileNode>()
  const byId = new Map<number, CpuProfileNode>()
  for (const node of profile.nodes) {
    byId.set(node.id, node)
    for (const child of node.children ?? []) parent.set(child, node)
  }
  const isCode = (node: CpuProfileNode) => {
    const origin = originOf(node.callFrame.url, node.callFrame.functionName)
    return origin !== 'node' && !origin.startsWith('(')
  }
  const owner = (node: CpuProfileNode): CpuProfileNode | undefined => {
    for (let at: CpuProfileNode | undefined = node; at; at = parent.get(at.id)) if (isCode(at)) return at
    return undefined
  }
  const byOwner = new Map<string, HotFunction>()
  const byFunction = new Map<string, HotFunction>()
  const byOrigin = new Map<string, number>()
  let totalMs = 0
  let idleMs = 0
  let gcMs = 0
  for (const node of profile.nodes) {
    const ms = self.get(node.id) ?? 0
    if (ms === 0) continue
    totalMs += ms
    const { functionName, url, lineNumber } = node.callFrame
    if (functionName === '(idle)') {
      idleMs += ms
      continue
    }
    if (functionName === '(garbage collector)') gcMs += ms
    const origin = originOf(url, functionName)
    byOrigin.set(origin, (byOrigin.get(origin) ?? 0) + ms)
    const name = functionName || '(anonymous)'
    const location = shortLocation(url, lineNumber, options.root ?? '')
    const key = `${name}\u0000${location}`
    const entry = byFunction.get(key)
    if (entry) entry.selfMs += ms
    else byFunction.set(key, { name, location, origin, selfMs: ms, share: 0 })
    const found = owner(byId.get(node.id) ?? node)
    if (found) {
      const ownerName = found.callFrame.functionName || '(anonymous)'
      const ownerLocation = shortLocation(found.callFrame.url, found.callFrame.lineNumber, options.root ?? '')
      const ownerKey = `${ownerName}\u0000${ownerLocation}`
      const charged = byOwner.get(ownerKey)
      if (charged) charged.selfMs += ms
      else {
        const origin = originOf(found.callFrame.url, found.callFrame.functionName)
        byOwner.set(ownerKey, { name: ownerName, location: ownerLocation, origin, selfMs: ms, share: 0 })
      }
    }
  }
  const busyMs = totalMs - idleMs
  const share = (ms: number) => (busyMs > 0 ? ms / busyMs : 0)
  const top = [...byFunction.values()]
    .sort((a, b) => b.selfMs - a.selfMs)
    .slice(0, options.top ?? 15)
    .map((fn) => ({ ...fn, share: share(fn.selfMs) }))
  const owners = [...byOwner.values()]
    .sort((a, b) => b.selfMs - a.selfMs)
    .slice(0, options.top ?? 15)
    .map((fn) => ({ ...fn, share: share(fn.selfMs) }))
  return {
    totalMs,
    idleMs,
    busyMs,
    gcMs,
    top,
    owners,
    byOrigin: [...byOrigin]
      .sort((a, b) => b[1] - a[1])
      .map(([origin, ms]) => ({ origin, selfMs: ms, share: share(ms) })),
  }
}
