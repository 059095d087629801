/**
 * `npm run perf`: velo against a direct connection and the Portkey gateway, side by side in one run,
 * judged against the targets of issue 10, written to docs/performance.md. See USAGE in lib/options.ts
 * and the method in lib/doc.ts.
 */
import { existsSync } from 'node:fs'
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join, relative, resolve } from 'node:path'
import { configSchema } from '../src/core/config/schema.js'
import { type LlamaServer, startLlamaServer } from '../src/core/engine/llama-server.js'
import { requireEngine } from '../src/core/engine/resolve.js'
import { writeFileAtomic } from '../src/core/fs-atomic.js'
import { ensureSynthModel } from '../src/core/models/synth.js'
import { liveProcesses } from '../src/core/process/supervise.js'
import { type CpuProfile, type ProfileSummary, summarizeCpuProfile } from './lib/cpu-profile.js'
import { renderDoc, type SectionReport } from './lib/doc.js'
import type { LoadJob, LoadResult } from './lib/load-types.js'
import { type MachineInfo, machineInfo } from './lib/machine.js'
import { mergeResults, roundOrder } from './lib/merge.js'
import { type PerfOptions, parseOptions, USAGE } from './lib/options.js'
import {
  infoRow,
  judge,
  type Outcome,
  type Row,
  TARGETS,
  tally,
  textTable,
  verdictText,
} from './lib/report.js'
import {
  cpuProfiles,
  type Endpoint,
  endpoint,
  NODE_PROXY,
  PORTKEY_DIR,
  REPO,
  runBenchScript,
  type Service,
  startNodeProxy,
  startPortkey,
  startUpstream,
  startVelo,
  type VeloAvailability,
  veloServeAvailability,
} from './lib/services.js'
import type { SemanticResult } from './semantic.js'

const started = performance.now()
/** Progress on stderr, each line with the seconds since the start (the run should stay near 5 minutes). */
const log = (line: string): void => {
  const at = `[+${String(Math.round((performance.now() - started) / 1000)).padStart(3)}s]`
  process.stderr.write(line === '' || line.startsWith('\n') ? `${line}\n` : `${at} ${line}\n`)
}

/** Milliseconds with 3 decimals; '-' for a value that is missing (NaN turns into null through JSON). */
const ms = (value: number | null | undefined): string =>
  value === undefined || value === null || !Number.isFinite(value) ? '-' : value.toFixed(3)
const int = (value: number): string => Math.round(value).toLocaleString('en-US')

const MESSAGES = [
  { role: 'system', content: 'You are a helpful assistant.' },
  { role: 'user', content: 'Say something short about the sea.' },
]
/** temperature > 0 and no seed: velo's exact cache must not answer it (section 1 and 2 measure the proxy). */
const CHAT_BODY = JSON.stringify({
  model: 'bench-model',
  messages: MESSAGES,
  temperature: 0.7,
  max_tokens: 32,
})
const STREAM_BODY = JSON.stringify({
  model: 'bench-model',
  messages: MESSAGES,
  temperature: 0.7,
  max_tokens: 256,
  stream: true,
})
/** A stream of one chunk: many streams per second, so time to first byte has a useful sample count. */
const STREAM_FIRST_BODY = JSON.stringify({
  model: 'bench-model',
  messages: MESSAGES,
  temperature: 0.7,
  max_tokens: 1,
  stream: true,
})
/** Deterministic and always the same: every request after the first is an exact-cache hit. */
const CACHE_BODY = JSON.stringify({
  model: 'bench-model',
  messages: MESSAGES,
  temperature: 0,
  seed: 7,
  max_tokens: 32,
})

const UPSTREAM_CHUNKS = 200
const UPSTREAM_GAP_MS = 1

interface Context {
  options: PerfOptions
  work: string
  velo: VeloAvailability
  verdicts: Map<string, Outcome>
  info: Row[]
  sections: SectionReport[]
  notes: string[]
  profile: { file: string; summary: ProfileSummary } | undefined
}

let jobs = 0

const SUMMARY_FIELDS = new Set(['min', 'mean', 'p50', 'p90', 'p99', 'max'])
/** JSON writes NaN (the percentile of no samples) as null: read it back as NaN so arithmetic cannot mistake it for 0. */
function reviveNaN(key: string, value: unknown): unknown {
  return value === null && SUMMARY_FIELDS.has(key) ? Number.NaN : value
}

/** One load run in a fresh load-generator process. */
async function load(ctx: Context, job: LoadJob): Promise<LoadResult> {
  const n = ++jobs
  const jobFile = join(ctx.work, `job-${n}.json`)
  const resultFile = join(ctx.work, `result-${n}.json`)
  await writeFile(jobFile, JSON.stringify(job))
  await runBenchScript('loadgen.ts', [jobFile, resultFile])
  return JSON.parse(await readFile(resultFile, 'utf8'), reviveNaN) as LoadResult
}

/**
 * Each target measured `rounds` times in mirrored order (A B C, C B A, ...), each run getting
 * 1/rounds of the job's duration, and the runs of a target pooled. A target whose every request
 * failed in a round is not run again.
 */
async function compare(
  ctx: Context,
  targets: readonly Endpoint[],
  jobOf: (target: Endpoint) => LoadJob,
): Promise<Map<string, LoadResult>> {
  const rounds = ctx.options.rounds
  const runs = new Map<string, LoadResult[]>()
  const failed = new Set<string>()
  for (let round = 0; round < rounds; round++) {
    for (const target of roundOrder(targets, round)) {
      if (failed.has(target.name)) continue
      const job = jobOf(target)
      const result = await load(ctx, {
        ...job,
        durationMs: job.durationMs === undefined ? undefined : job.durationMs / rounds,
        keepSamples: rounds > 1,
      })
      runs.set(target.name, [...(runs.get(target.name) ?? []), result])
      if (result.ok === 0) failed.add(target.name)
    }
  }
  return new Map([...runs].map(([name, results]) => [name, mergeResults(results)]))
}

function jobFor(
  target: Endpoint,
  body: string | string[],
  options: Omit<LoadJob, 'origin' | 'path' | 'headers' | 'bodies'>,
): LoadJob {
  return {
    origin: target.origin,
    path: target.chatPath,
    headers: target.headers,
    bodies: Array.isArray(body) ? body : [body],
    ...options,
  }
}

function errorText(result: LoadResult): string {
  const retried = result.retries > 0 ? `, ${result.retries} retried` : ''
  if (result.errors === 0) return `0${retried}`
  const statuses = Object.entries(result.statuses)
    .filter(([status]) => !status.startsWith('2'))
    .map(([status, count]) => `${status}x${count}`)
  return `${result.errors} (${statuses.join(' ')})${retried}`
}

/** A measurement when the run had answers; an error naming the first failure otherwise. */
function measured(
  result: LoadResult | undefined,
  value: (r: LoadResult) => number | undefined,
  detail?: string,
): Outcome {
  if (!result) return { kind: 'error', reason: 'not measured' }
  if (result.ok === 0)
    return { kind: 'error', reason: `no request succeeded: ${result.firstError ?? 'unknown error'}` }
  const v = value(result)
  if (v === undefined || Number.isNaN(v))
    return { kind: 'error', reason: 'the run did not record this value' }
  return { kind: 'measured', value: v, detail: detail ?? '' }
}

function veloPending(ctx: Context): Outcome {
  return { kind: 'pending', reason: ctx.velo.ok ? 'velo did not start (see notes)' : ctx.velo.reason }
}

function headerCounts(result: LoadResult): string {
  return Object.entries(result.byHeader ?? {})
    .map(([value, summary]) => `${value}: ${summary.count}`)
    .join(', ')
}

// ---------------------------------------------------------------------------------------------------
// Section 1: non-streaming chat

async function sectionNonStreaming(
  ctx: Context,
  targets: Endpoint[],
  velo: Endpoint | undefined,
): Promise<void> {
  const { options } = ctx
  const results = new Map<string, LoadResult>()
  const rows: string[][] = []
  const notes: string[] = []
  for (const concurrency of options.concurrency) {
    const measured = await compare(ctx, targets, (target) =>
      jobFor(target, CHAT_BODY, {
        mode: 'unary',
        concurrency,
        durationMs: options.runSeconds * 1000,
        warmupMs: options.warmupSeconds * 1000,
        timeoutMs: 30_000,
        splitByHeader: target === velo ? 'x-velo-cache' : undefined,
      }),
    )
    const direct = measured.get('direct')
    for (const target of targets) {
      const result = measured.get(target.name)
      if (!result) continue
      results.set(`${target.name}@${concurrency}`, result)
      const added = target.name === 'direct' || !direct ? undefined : result.latency.p50 - direct.latency.p50
      log(
        `[1] c=${String(concurrency).padEnd(3)} ${target.name.padEnd(8)} ${int(result.rps).padStart(7)} req/s  p50 ${ms(result.latency.p50)} ms  p99 ${ms(result.latency.p99)} ms${added === undefined ? '' : `  added p50 ${ms(added)} ms`}  errors ${errorText(result)}`,
      )
      rows.push([
        target.name,
        String(concurrency),
        int(result.rps),
        ms(result.latency.p50),
        ms(result.latency.p99),
        added === undefined ? '' : ms(added),
        errorText(result),
      ])
      if (target === velo && result.byHeader) {
        notes.push(`velo at c=${concurrency}: x-velo-cache ${headerCounts(result)}`)
        if (result.byHeader['hit'] !== undefined) {
          notes.push(
            `velo answered ${result.byHeader['hit'].count} requests from its cache: section 1 is not a proxy measurement`,
          )
        }
      }
      if (result.firstError)
        notes.push(`${target.name} at c=${concurrency}: first error: ${result.firstError}`)
    }
  }
  const at = (name: string, c: number) => results.get(`${name}@${c}`)
  const d1 = at('direct', 1)
  const v1 = at('velo', 1)
  const v32 = at('velo', 32)
  const p1 = at('Portkey', 1)
  const p32 = at('Portkey', 32)
  const hasC1 = options.concurrency.includes(1)
  const hasC32 = options.concurrency.includes(32)
  const n1 = at(NODE_PROXY, 1)
  const n32 = at(NODE_PROXY, 32)
  // Where velo's figure fails, what the floor itself gets on this machine says how far a Node proxy can go.
  const floorAdded = d1 && n1 && n1.ok > 0 ? `; the floor adds ${ms(n1.latency.p50 - d1.latency.p50)} ms` : ''
  const floorP99 =
    n32 && n32.ok > 0 ? `; the floor: p99 ${ms(n32.latency.p99)} ms at ${int(n32.rps)} req/s` : ''
  ctx.verdicts.set(
    'added-p50-c1',
    !hasC1
      ? { kind: 'not-run' }
      : !velo
        ? veloPending(ctx)
        : measured(
            v1,
            (v) => (d1 ? v.latency.p50 - d1.latency.p50 : undefined),
            `velo p50 ${ms(v1?.latency.p50)} ms, direct ${ms(d1?.latency.p50)} ms${floorAdded}`,
          ),
  )
  ctx.verdicts.set(
    'rps-c32-vs-portkey',
    !hasC32
      ? { kind: 'not-run' }
      : !velo
        ? veloPending(ctx)
        : !p32
          ? { kind: 'pending', reason: 'Portkey did not run (see notes)' }
          : measured(
              v32,
              (v) => (p32.ok > 0 ? v.rps / p32.rps : undefined),
              `velo ${int(v32?.rps ?? 0)} req/s, Portkey ${int(p32.rps)} req/s`,
            ),
  )
  ctx.verdicts.set(
    'p99-c32',
    !hasC32
      ? { kind: 'not-run' }
      : !velo
        ? veloPending(ctx)
        : measured(v32, (v) => v.latency.p99, `velo ${int(v32?.rps ?? 0)} req/s${floorP99}`),
  )
  for (const c of options.concurrency) {
    const d = at('direct', c)
    const v = at('velo', c)
    const p = at('Portkey', c)
    if (d && v && v.ok > 0)
      ctx.info.push(
        infoRow(1, `req/s at c=${c}, velo / direct`, v.rps / d.rps, 'x', `direct ${int(d.rps)} req/s`),
      )
    if (d && p && p.ok > 0) {
      ctx.info.push(
        infoRow(1, `req/s at c=${c}, Portkey / direct`, p.rps / d.rps, 'x', `Portkey ${int(p.rps)} req/s`),
      )
    }
  }
  if (d1 && p1 && p1.ok > 0) {
    ctx.info.push(infoRow(1, 'Portkey added latency p50, c=1', p1.latency.p50 - d1.latency.p50, 'ms'))
  }
  if (p32 && p32.ok > 0) ctx.info.push(infoRow(1, 'Portkey p99 at c=32', p32.latency.p99, 'ms'))
  if (d1 && n1 && n1.ok > 0) {
    ctx.info.push(
      infoRow(1, 'node proxy added latency p50, c=1 (the floor)', n1.latency.p50 - d1.latency.p50, 'ms'),
    )
  }
  if (n32 && n32.ok > 0) {
    ctx.info.push(
      infoRow(
        1,
        'req/s at c=32, velo / node proxy',
        (v32?.rps ?? 0) / n32.rps,
        'x',
        `node proxy ${int(n32.rps)} req/s, p99 ${ms(n32.latency.p99)} ms`,
      ),
    )
  }
  notes.push(
    `${NODE_PROXY}: bench/node-proxy.ts, node:http in front of an undici Pool with nothing else (no routing, validation, logs or metrics): the floor a proxy written in Node starts from on this machine.`,
  )
  ctx.sections.push({
    number: 1,
    title: 'Non-streaming chat',
    headers: ['target', 'clients', 'req/s', 'p50 ms', 'p99 ms', 'added p50 ms', 'errors'],
    rows,
    notes,
  })
}

// ---------------------------------------------------------------------------------------------------
// Section 2: streaming chat

async function sectionStreaming(
  ctx: Context,
  targets: Endpoint[],
  velo: Endpoint | undefined,
): Promise<void> {
  const { options } = ctx
  const firstBytes = new Map<string, LoadResult>()
  const streams = new Map<string, LoadResult>()
  const rows: string[][] = []
  const notes: string[] = [
    `Time to first byte: one client, streams of one chunk (max_tokens 1), to the first body byte. Chunks: one client, streams of ${UPSTREAM_CHUNKS} chunks the upstream writes ${UPSTREAM_GAP_MS} ms apart; one-way = arrival time minus the time the upstream wrote the chunk.`,
  ]
  const common = {
    mode: 'stamped-sse' as const,
    concurrency: 1,
    warmupMs: options.warmupSeconds * 1000,
    timeoutMs: 30_000,
  }
  const firstByteRuns = await compare(ctx, targets, (target) =>
    jobFor(target, STREAM_FIRST_BODY, { ...common, durationMs: options.runSeconds * 1000 }),
  )
  // A target that failed every short stream fails the long ones too: no need to wait for it.
  const streaming = targets.filter((target) => (firstByteRuns.get(target.name)?.ok ?? 0) > 0)
  // A 200-chunk stream takes ~0.25 s: a floor of 3 s keeps the chunk count useful in --quick runs.
  const streamRuns = await compare(ctx, streaming, (target) =>
    jobFor(target, STREAM_BODY, { ...common, durationMs: Math.max(3, options.runSeconds) * 1000 }),
  )
  for (const target of targets) {
    const first = firstByteRuns.get(target.name)
    if (!first) continue
    const full = streamRuns.get(target.name) ?? first
    firstBytes.set(target.name, first)
    streams.set(target.name, full)
    const perStream = full.ok > 0 ? full.events / full.ok : 0
    log(
      `[2] ${target.name.padEnd(8)} TTFB p50 ${ms(first.ttfb?.p50)} ms p99 ${ms(first.ttfb?.p99)} ms (${first.ok})  chunk one-way p50 ${ms(full.chunkOneWay?.p50)} ms p99 ${ms(full.chunkOneWay?.p99)} ms (${full.ok} streams, ${perStream.toFixed(0)} events each)  errors ${errorText(first)} / ${errorText(full)}`,
    )
    rows.push([
      target.name,
      String(first.ok),
      ms(first.ttfb?.p50),
      ms(first.ttfb?.p99),
      String(full.ok),
      ms(full.chunkOneWay?.p50),
      ms(full.chunkOneWay?.p99),
      ms(full.chunkGap?.p50),
      ms(full.latency.p50),
      perStream.toFixed(0),
      `${errorText(first)} / ${errorText(full)}`,
    ])
    if (full.ok > 0 && full.chunkOneWay === undefined) {
      notes.push(`${target.name}: the chunks arrived without the upstream's time stamps (content rewritten?)`)
    }
    const firstError = first.firstError ?? full.firstError
    if (firstError) notes.push(`${target.name}: first error: ${firstError}`)
    if (target.name === 'Portkey' && full.ok === 0 && firstError?.includes('Something went wrong')) {
      notes.push(
        'Portkey 1.15.2 fails every streaming request on Node with `TypeError: immutable` in its responseService.updateHeaders (its log); a known bug: Portkey-AI/gateway issues 1550 and 1389.',
      )
    }
  }
  const chunkAdded = (r: LoadResult | undefined) => {
    const direct = streams.get('direct')?.chunkOneWay
    return r?.chunkOneWay && direct ? (r.chunkOneWay.p50 - direct.p50) * 1000 : undefined
  }
  const ttfbAdded = (r: LoadResult | undefined) => {
    const direct = firstBytes.get('direct')?.ttfb
    return r?.ttfb && direct ? r.ttfb.p50 - direct.p50 : undefined
  }
  const v = streams.get('velo')
  const floorChunk = chunkAdded(streams.get(NODE_PROXY))
  const floorFirst = ttfbAdded(firstBytes.get(NODE_PROXY))
  ctx.verdicts.set(
    'chunk-added',
    velo
      ? measured(
          v,
          chunkAdded,
          `velo one-way p99 ${ms(v?.chunkOneWay?.p99)} ms${floorChunk === undefined ? '' : `; the floor adds ${floorChunk.toFixed(0)} us`}`,
        )
      : veloPending(ctx),
  )
  const vFirst = firstBytes.get('velo')
  ctx.verdicts.set(
    'ttfb-added',
    velo
      ? measured(
          vFirst,
          ttfbAdded,
          `velo p50 ${ms(vFirst?.ttfb?.p50)} ms, direct ${ms(firstBytes.get('direct')?.ttfb?.p50)} ms${floorFirst === undefined ? '' : `; the floor adds ${ms(floorFirst)} ms`}`,
        )
      : veloPending(ctx),
  )
  const pChunk = chunkAdded(streams.get('Portkey'))
  const pFirst = ttfbAdded(firstBytes.get('Portkey'))
  if (pChunk !== undefined) ctx.info.push(infoRow(2, 'Portkey per-chunk added latency p50', pChunk, 'us'))
  if (pFirst !== undefined) ctx.info.push(infoRow(2, 'Portkey time to first byte added, p50', pFirst, 'ms'))
  ctx.sections.push({
    number: 2,
    title: 'Streaming chat (SSE)',
    headers: [
      'target',
      'short streams',
      'TTFB p50 ms',
      'TTFB p99 ms',
      '200-chunk streams',
      'chunk one-way p50 ms',
      'p99 ms',
      'gap p50 ms',
      'stream p50 ms',
      'events/stream',
      'errors',
    ],
    rows,
    notes,
  })
}

// ---------------------------------------------------------------------------------------------------
// Section 3: cache

async function sectionExactCache(
  ctx: Context,
  direct: Endpoint,
  velo: Endpoint | undefined,
): Promise<SectionReport> {
  const section: SectionReport = {
    number: 3,
    title: 'Cache',
    headers: ['what', 'count', 'p50 ms', 'p99 ms', 'max ms'],
    rows: [],
    notes: [],
  }
  if (!velo) {
    ctx.verdicts.set('cache-hit-p99', veloPending(ctx))
    return section
  }
  const job = {
    mode: 'unary' as const,
    concurrency: 1,
    durationMs: ctx.options.runSeconds * 1000,
    warmupMs: ctx.options.warmupSeconds * 1000,
    timeoutMs: 30_000,
  }
  const upstream = await load(ctx, jobFor(direct, CACHE_BODY, job))
  const result = await load(ctx, jobFor(velo, CACHE_BODY, { ...job, splitByHeader: 'x-velo-cache' }))
  const hits = result.byHeader?.['hit']
  log(
    `[3] exact cache: x-velo-cache ${headerCounts(result)}; hit p50 ${ms(hits?.p50)} ms p99 ${ms(hits?.p99)} ms`,
  )
  section.rows.push([
    'direct upstream (no cache)',
    String(upstream.ok),
    ms(upstream.latency.p50),
    ms(upstream.latency.p99),
    ms(upstream.latency.max),
  ])
  for (const [value, summary] of Object.entries(result.byHeader ?? {})) {
    section.rows.push([
      `velo, x-velo-cache: ${value}`,
      String(summary.count),
      ms(summary.p50),
      ms(summary.p99),
      ms(summary.max),
    ])
  }
  if (result.ok === 0) {
    ctx.verdicts.set(
      'cache-hit-p99',
      measured(result, () => undefined),
    )
  } else if (!hits) {
    ctx.verdicts.set('cache-hit-p99', {
      kind: 'pending',
      reason: `velo answered no request from its exact cache (x-velo-cache ${headerCounts(result) || 'absent'})`,
    })
  } else {
    ctx.verdicts.set('cache-hit-p99', {
      kind: 'measured',
      value: hits.p99,
      detail: `hit p50 ${ms(hits.p50)} ms; upstream answer p50 ${ms(upstream.latency.p50)} ms`,
    })
  }
  return section
}

async function sectionSemantic(ctx: Context, section: SectionReport): Promise<void> {
  const resultFile = join(ctx.work, 'semantic.json')
  const budgetMs = ctx.options.semanticBudgetSeconds * 1000
  log(
    `[3] semantic index: building ${ctx.options.semanticSizes.join(', ')} entries (budget ${Number.isFinite(budgetMs) ? `${budgetMs / 1000} s` : 'none'})`,
  )
  await runBenchScript('semantic.ts', [
    resultFile,
    '--sizes',
    ctx.options.semanticSizes.join(','),
    '--budget-ms',
    String(budgetMs),
  ])
  const result = JSON.parse(await readFile(resultFile, 'utf8')) as SemanticResult
  if (result.status === 'pending') {
    ctx.verdicts.set('semantic-p99-100k', { kind: 'pending', reason: result.reason })
    section.notes.push(`semantic lookup: ${result.reason}`)
    return
  }
  section.notes.push(
    `Semantic lookup: velo's SemanticIndex, ${result.dim}-dimensional clustered vectors in one namespace, search only (no embedding).`,
  )
  for (const size of result.sizes) {
    if ('skipped' in size) {
      log(`[3] semantic ${size.entries}: skipped, ${size.skipped}`)
      section.notes.push(`semantic lookup at ${size.entries} entries skipped: ${size.skipped}`)
      continue
    }
    log(
      `[3] semantic ${size.entries}: lookup p50 ${ms(size.lookup.p50)} ms p99 ${ms(size.lookup.p99)} ms, recall ${(size.recall * 100).toFixed(1)}%, insert ${size.insertMs.toFixed(2)} ms`,
    )
    section.rows.push([
      `semantic lookup, ${int(size.entries)} entries`,
      String(size.lookup.count),
      ms(size.lookup.p50),
      ms(size.lookup.p99),
      ms(size.lookup.max),
    ])
    section.notes.push(
      `${int(size.entries)} entries: built in ${(size.buildMs / 1000).toFixed(1)} s (${size.insertMs.toFixed(2)} ms per insert), nearest-match recall ${(size.recall * 100).toFixed(1)}%`,
    )
  }
  const at100k = result.sizes.find((size) => size.entries === 100_000)
  ctx.verdicts.set(
    'semantic-p99-100k',
    !at100k
      ? { kind: 'not-run' }
      : 'skipped' in at100k
        ? { kind: 'pending', reason: at100k.skipped }
        : { kind: 'measured', value: at100k.lookup.p99, detail: `p50 ${ms(at100k.lookup.p50)} ms` },
  )
  const at10k = result.sizes.find((size) => size.entries === 10_000)
  if (at10k && !('skipped' in at10k))
    ctx.info.push(infoRow(3, 'semantic lookup p99 at 10k entries', at10k.lookup.p99, 'ms'))
}

// ---------------------------------------------------------------------------------------------------
// Section 4: real engine

const ENGINE_MODEL = 'velo-small'
const ENGINE_BODY = JSON.stringify({
  model: ENGINE_MODEL,
  messages: [{ role: 'user', content: 'Write a short story about a lighthouse keeper who finds a map.' }],
  temperature: 0.8,
  max_tokens: 64,
  ignore_eos: true,
  stream: true,
  stream_options: { include_usage: true },
})

async function sectionEngine(ctx: Context): Promise<void> {
  const rows: string[][] = []
  const notes: string[] = []
  const engine = await requireEngine()
  const model = await ensureSynthModel('small')
  let llama: LlamaServer | undefined
  let velo: Service | undefined
  try {
    log('[4] starting llama-server with the small synthetic model (--parallel 8)')
    llama = await startLlamaServer({
      serverPath: engine.serverPath,
      model,
      alias: ENGINE_MODEL,
      args: ['--ctx-size', '8192', '--parallel', '8'],
    })
    if (ctx.velo.ok) {
      try {
        velo = await startVelo({
          name: 'velo-engine',
          upstreams: [`${llama.url}/v1`],
          config: {},
          expectModels: [ENGINE_MODEL],
          workDir: ctx.work,
          flags: ctx.velo.flags,
        })
      } catch (error) {
        ctx.notes.push(`velo (section 4) did not start: ${firstLines(error)}`)
      }
    }
    const targets: Endpoint[] = [endpoint('direct', llama.url), ...(velo ? [velo] : [])]
    const results = await compare(ctx, targets, (target) =>
      jobFor(target, ENGINE_BODY, {
        mode: 'chat-sse',
        concurrency: 8,
        durationMs: ctx.options.engineSeconds * 1000,
        warmupMs: 3000,
        timeoutMs: 120_000,
      }),
    )
    for (const target of targets) {
      const result = results.get(target.name)
      if (!result) continue
      log(
        `[4] ${target.name.padEnd(8)} ${result.tokensPerSecond.toFixed(1)} tok/s  ${result.ok} requests  TTFT p50 ${ms(result.ttft?.p50)} ms p99 ${ms(result.ttft?.p99)} ms  errors ${errorText(result)}`,
      )
      rows.push([
        target.name,
        result.tokensPerSecond.toFixed(1),
        String(result.ok),
        String(result.completionTokens),
        ms(result.ttft?.p50),
        ms(result.ttft?.p99),
        ms(result.chunkGap?.p50),
        errorText(result),
      ])
      if (result.firstError) notes.push(`${target.name}: first error: ${result.firstError}`)
    }
    const direct = results.get('direct')
    const v = results.get('velo')
    if (!velo) {
      ctx.verdicts.set('engine-tok-s', veloPending(ctx))
      ctx.verdicts.set('engine-ttft-p99', veloPending(ctx))
    } else {
      ctx.verdicts.set(
        'engine-tok-s',
        measured(
          v,
          (r) =>
            direct && direct.tokensPerSecond > 0 ? r.tokensPerSecond / direct.tokensPerSecond : undefined,
          `velo ${v?.tokensPerSecond.toFixed(1)} tok/s, direct ${direct?.tokensPerSecond.toFixed(1)} tok/s`,
        ),
      )
      ctx.verdicts.set(
        'engine-ttft-p99',
        measured(
          v,
          (r) => (r.ttft && direct?.ttft ? r.ttft.p99 / direct.ttft.p99 : undefined),
          `velo ${ms(v?.ttft?.p99)} ms, direct ${ms(direct?.ttft?.p99)} ms`,
        ),
      )
    }
  } finally {
    await velo?.stop()
    await llama?.stop()
  }
  notes.push('8 streaming clients, max_tokens 64 with ignore_eos; the two sides run one after the other.')
  ctx.sections.push({
    number: 4,
    title: 'Real engine (llama-server, small synthetic model)',
    headers: [
      'target',
      'tok/s',
      'requests',
      'tokens',
      'TTFT p50 ms',
      'TTFT p99 ms',
      'inter-token p50 ms',
      'errors',
    ],
    rows,
    notes,
  })
}

// ---------------------------------------------------------------------------------------------------
// Section 5: model affinity

/** Config fragments that would make velo forward in arrival order, in the order they are tried. */
const ARRIVAL_ORDER_SWITCHES: { key: string; config: Record<string, unknown> }[] = [
  { key: 'scheduler.affinity.enabled: false', config: { scheduler: { affinity: { enabled: false } } } },
  { key: 'scheduler.affinity: false', config: { scheduler: { affinity: false } } },
  { key: 'scheduler.modelAffinity: false', config: { scheduler: { modelAffinity: false } } },
]

function affinityBody(model: string): string {
  return JSON.stringify({
    model,
    messages: [{ role: 'user', content: 'Name a colour.' }],
    temperature: 0.8,
    max_tokens: 8,
  })
}

async function sectionAffinity(ctx: Context): Promise<void> {
  const rows: string[][] = []
  const notes: string[] = []
  const section = (): SectionReport => ({
    number: 5,
    title: 'Model affinity (two managed models, maxLoaded 1, interleaved load)',
    headers: ['velo', 'completed', 'req/min', 'p50 ms', 'p99 ms', 'errors'],
    rows,
    notes,
  })
  if (!ctx.velo.ok) {
    ctx.verdicts.set('affinity', veloPending(ctx))
    ctx.sections.push(section())
    return
  }
  const [tiny, small] = await Promise.all([ensureSynthModel('tiny'), ensureSynthModel('small')])
  const args = ['--ctx-size', '2048', '--parallel', '2']
  const base = {
    managed: {
      maxLoaded: 1,
      models: { tiny: { path: tiny, args }, small: { path: small, args } },
    },
  }
  const arrival = ARRIVAL_ORDER_SWITCHES.find((s) => configSchema.safeParse({ ...base, ...s.config }).success)
  const variants: { name: string; config: Record<string, unknown> }[] = [
    { name: 'default scheduling', config: base },
  ]
  if (arrival)
    variants.push({ name: `arrival order (${arrival.key})`, config: { ...base, ...arrival.config } })
  else {
    notes.push(
      `velo's config has no switch that turns model affinity off (tried ${ARRIVAL_ORDER_SWITCHES.map((s) => s.key).join(', ')}), so arrival-order forwarding cannot be measured yet.`,
    )
  }
  const results: LoadResult[] = []
  for (const variant of variants) {
    let velo: Service | undefined
    try {
      velo = await startVelo({
        name: `velo-${results.length === 0 ? 'affinity' : 'arrival'}`,
        upstreams: [],
        config: variant.config,
        expectModels: ['tiny', 'small'],
        workDir: ctx.work,
        flags: ctx.velo.flags,
      })
      const result = await load(
        ctx,
        jobFor(velo, [affinityBody('tiny'), affinityBody('small')], {
          mode: 'unary',
          concurrency: ctx.options.affinityClients,
          durationMs: ctx.options.affinitySeconds * 1000,
          warmupMs: 0,
          timeoutMs: 180_000,
        }),
      )
      results.push(result)
      const perMinute = (result.ok / result.elapsedMs) * 60_000
      log(
        `[5] ${variant.name}: ${result.ok} completed, ${perMinute.toFixed(1)} req/min, errors ${errorText(result)}`,
      )
      rows.push([
        variant.name,
        String(result.ok),
        perMinute.toFixed(1),
        ms(result.latency.p50),
        ms(result.latency.p99),
        errorText(result),
      ])
      if (result.firstError) notes.push(`${variant.name}: first error: ${result.firstError}`)
    } finally {
      await velo?.stop()
    }
  }
  const [withAffinity, arrivalOrder] = results
  const perMinute = (r: LoadResult) => (r.ok / r.elapsedMs) * 60_000
  if (!arrival) {
    ctx.verdicts.set('affinity', {
      kind: 'pending',
      reason: 'needs a velo.yaml switch to forward in arrival order (e.g. scheduler.affinity.enabled: false)',
    })
  } else {
    ctx.verdicts.set(
      'affinity',
      measured(withAffinity, (r) =>
        arrivalOrder && arrivalOrder.ok > 0 ? perMinute(r) / perMinute(arrivalOrder) : undefined,
      ),
    )
  }
  const clients = ctx.options.affinityClients
  notes.push(
    `${clients} clients, each sending its next request when the last ends; requests alternate tiny, small, tiny, ...; max_tokens 8; each model's llama-server has 2 slots.`,
    `With ${clients} clients alternating models, affinity serves up to ${clients} requests per model switch where arrival order pays about one switch per request, so the ratio approaches ${clients}x only as a switch (stopping one llama-server, starting the other) costs far more than a request.`,
  )
  ctx.sections.push(section())
}

// ---------------------------------------------------------------------------------------------------

function firstLines(error: unknown, lines = 6): string {
  const text = error instanceof Error ? error.message : String(error)
  return text.split('\n').slice(0, lines).join(' | ')
}

async function newestMtime(dir: string): Promise<number> {
  let newest = 0
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue
    newest = Math.max(newest, (await stat(join(entry.parentPath, entry.name))).mtimeMs)
  }
  return newest
}

/** velo is measured from dist/: say so when the source has changed since the last build. */
async function staleBuildNote(): Promise<string | undefined> {
  const dist = join(REPO, 'dist')
  if (!existsSync(dist)) return 'dist/ is missing: run `npm run build` first'
  const [src, built] = await Promise.all([newestMtime(join(REPO, 'src')), newestMtime(dist)])
  return src > built
    ? 'dist/ is older than src/: velo was measured as last built (run `npm run build`)'
    : undefined
}

async function withFastServices(ctx: Context): Promise<void> {
  const { sections } = ctx.options
  const services: Service[] = []
  let cacheSection: SectionReport | undefined
  try {
    log('starting the bench upstream')
    const upstream = await startUpstream({ chunks: UPSTREAM_CHUNKS, gapMs: UPSTREAM_GAP_MS })
    services.push(upstream)
    const upstreamV1 = `${upstream.origin}/v1`
    let velo: Service | undefined
    if (ctx.velo.ok) {
      try {
        log('starting velo serve')
        velo = await startVelo({
          name: 'velo',
          upstreams: [upstreamV1],
          config: {},
          expectModels: ['bench-model'],
          workDir: ctx.work,
          flags: ctx.velo.flags,
        })
        services.push(velo)
      } catch (error) {
        ctx.velo = { ok: false, reason: `velo serve did not start: ${firstLines(error)}` }
        ctx.notes.push(ctx.velo.reason)
        log(ctx.velo.reason)
      }
    }
    let portkey: Service | undefined
    if (sections.has(1) || sections.has(2)) {
      try {
        log('starting the Portkey gateway')
        portkey = await startPortkey(upstreamV1)
        services.push(portkey)
      } catch (error) {
        ctx.notes.push(`Portkey did not start: ${firstLines(error)}`)
        log(`Portkey did not start: ${firstLines(error)}`)
      }
    }
    const targets = [upstream, ...(velo ? [velo] : []), ...(portkey ? [portkey] : [])]
    let nodeProxy: Service | undefined
    if (sections.has(1) || sections.has(2)) {
      try {
        nodeProxy = await startNodeProxy(upstream.origin)
        services.push(nodeProxy)
      } catch (error) {
        ctx.notes.push(`the bench node proxy did not start: ${firstLines(error)}`)
      }
    }
    const withFloor = [...targets, ...(nodeProxy ? [nodeProxy] : [])]
    if (sections.has(1)) await section(ctx, 1, () => sectionNonStreaming(ctx, withFloor, velo))
    if (sections.has(2)) await section(ctx, 2, () => sectionStreaming(ctx, withFloor, velo))
    if (sections.has(3)) {
      await section(ctx, 3, async () => {
        cacheSection = await sectionExactCache(ctx, upstream, velo)
      })
    }
    if (ctx.options.cpuProfDir && velo) await profileVelo(ctx, upstreamV1)
  } finally {
    for (const service of services.reverse()) await service.stop()
  }
  if (ctx.options.cpuProfDir) await readProfile(ctx)
  if (sections.has(3)) {
    const report = cacheSection ?? { number: 3, title: 'Cache', headers: [], rows: [], notes: [] }
    await section(ctx, 3, () => sectionSemantic(ctx, report))
    ctx.sections.push(report)
  }
}

/**
 * --cpu-prof: a second velo, under the profiler, after the measurements (the profiler's overhead
 * stays out of the figures above), driven with section 1's and section 2's loads for a while; it
 * writes its profile as it exits.
 */
async function profileVelo(ctx: Context, upstreamV1: string): Promise<void> {
  log('starting a velo under --cpu-prof for the profile')
  const profiled = await startVelo({
    name: 'velo',
    upstreams: [upstreamV1],
    config: {},
    expectModels: ['bench-model'],
    workDir: ctx.work,
    flags: ctx.velo.ok ? ctx.velo.flags : new Set(),
    cpuProfDir: ctx.options.cpuProfDir,
  })
  try {
    const seconds = ctx.options.runSeconds * 1000
    for (const concurrency of ctx.options.concurrency) {
      await load(
        ctx,
        jobFor(profiled, CHAT_BODY, {
          mode: 'unary',
          concurrency,
          durationMs: seconds,
          warmupMs: 500,
          timeoutMs: 30_000,
        }),
      )
    }
    await load(
      ctx,
      jobFor(profiled, STREAM_BODY, {
        mode: 'stamped-sse',
        concurrency: 1,
        durationMs: seconds,
        warmupMs: 500,
        timeoutMs: 30_000,
      }),
    )
  } finally {
    await profiled.stop()
  }
}

async function readProfile(ctx: Context): Promise<void> {
  const dir = ctx.options.cpuProfDir
  if (!dir) return
  const file = (await cpuProfiles(dir)).find((path) => path.endsWith('/velo.cpuprofile'))
  if (!file) {
    ctx.notes.push(
      `--cpu-prof: no velo.cpuprofile in ${dir} (velo must exit normally on SIGTERM to write it)`,
    )
    return
  }
  const summary = summarizeCpuProfile(JSON.parse(await readFile(file, 'utf8')) as CpuProfile, {
    root: REPO,
    top: 20,
  })
  ctx.profile = { file, summary }
  log(`\nvelo CPU profile: ${file}`)
  log(
    `busy ${summary.busyMs.toFixed(0)} ms of ${summary.totalMs.toFixed(0)} ms; GC ${summary.gcMs.toFixed(0)} ms`,
  )
  log(
    textTable(
      ['self ms', 'share', 'function', 'where'],
      summary.top.map((fn) => [
        fn.selfMs.toFixed(0),
        `${(fn.share * 100).toFixed(1)}%`,
        fn.name,
        fn.location || fn.origin,
      ]),
    ),
  )
  log(
    textTable(
      ['self ms', 'share', 'origin'],
      summary.byOrigin
        .slice(0, 10)
        .map((o) => [o.selfMs.toFixed(0), `${(o.share * 100).toFixed(1)}%`, o.origin]),
    ),
  )
  log('charged to the nearest frame of velo or a package (Node and native work included):')
  log(
    textTable(
      ['ms', 'share', 'function', 'where'],
      summary.owners.map((fn) => [
        fn.selfMs.toFixed(0),
        `${(fn.share * 100).toFixed(1)}%`,
        fn.name,
        fn.location,
      ]),
    ),
  )
}

/** Run one section; a failure marks its targets ERROR and the run goes on with the next section. */
async function section(ctx: Context, number: number, run: () => Promise<void>): Promise<void> {
  try {
    await run()
    // Other work on the machine moves the numbers: leave a trace of how busy it was.
    ctx.notes.push(`1-minute load average after section ${number}: ${(loadavg()[0] ?? 0).toFixed(2)}`)
  } catch (error) {
    const reason = firstLines(error, 3)
    log(`[${number}] failed: ${reason}`)
    ctx.notes.push(`section ${number} failed: ${reason}`)
    for (const target of TARGETS) {
      if (target.section === number && !ctx.verdicts.has(target.id))
        ctx.verdicts.set(target.id, { kind: 'error', reason })
    }
  }
}

function verdictRows(ctx: Context): Row[] {
  const rows: Row[] = []
  for (const number of [1, 2, 3, 4, 5]) {
    for (const target of TARGETS.filter((t) => t.section === number)) {
      rows.push(judge(target, ctx.verdicts.get(target.id) ?? { kind: 'not-run' }))
    }
    rows.push(...ctx.info.filter((row) => row.section === number))
  }
  return rows
}

function describeMachine(m: MachineInfo): string {
  return `${m.cpu}, ${m.cores} cores, ${m.ramGiB} GiB, ${m.os}, Node ${m.node}, llama.cpp ${m.llamaCpp}, Portkey ${m.portkey}, velo ${m.velo}, load ${m.loadAtStart.toFixed(2)}`
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2)
  const date = new Date()
  let options: PerfOptions
  try {
    options = parseOptions(argv, { tmpdir: tmpdir(), now: date })
  } catch (error) {
    log(`perf: ${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`)
    return 2
  }
  if (options.help) {
    process.stdout.write(`${USAGE}\n`)
    return 0
  }
  const work = await mkdtemp(join(tmpdir(), 'velo-perf-'))
  const interrupted = async (signal: NodeJS.Signals): Promise<void> => {
    log(`\nperf: ${signal}: stopping everything it started`)
    await Promise.all(liveProcesses().map((proc) => proc.stop(2000)))
    await rm(work, { recursive: true, force: true })
    process.exit(130)
  }
  process.once('SIGINT', (signal) => void interrupted(signal))
  process.once('SIGTERM', (signal) => void interrupted(signal))

  const machine = await machineInfo()
  log(`perf: ${describeMachine(machine)}`)
  if (machine.loadAtStart > machine.cores * 0.5) {
    log(
      `perf: the machine is busy (load ${machine.loadAtStart.toFixed(2)} on ${machine.cores} cores): numbers will be noisy`,
    )
  }
  const ctx: Context = {
    options,
    work,
    velo: await veloServeAvailability(),
    verdicts: new Map(),
    info: [],
    sections: [],
    notes: [],
    profile: undefined,
  }
  if (!ctx.velo.ok) {
    log(`perf: velo serve is not available, measuring the other columns only: ${ctx.velo.reason}`)
    ctx.notes.push(`velo serve was not available: ${ctx.velo.reason}`)
  }
  const stale = await staleBuildNote()
  if (stale) {
    log(`perf: ${stale}`)
    ctx.notes.push(stale)
  }
  if (!existsSync(PORTKEY_DIR)) {
    ctx.notes.push('Portkey is not installed: npm install --save-dev @portkey-ai/gateway@1.15.2')
  }
  if (machine.loadAtStart > machine.cores * 0.5) {
    ctx.notes.push(
      `The machine was busy when the run started (1-minute load ${machine.loadAtStart.toFixed(2)} on ${machine.cores} cores): the numbers are noisy.`,
    )
  }
  try {
    if (options.sections.has(1) || options.sections.has(2) || options.sections.has(3))
      await withFastServices(ctx)
    if (options.sections.has(4)) await section(ctx, 4, () => sectionEngine(ctx))
    if (options.sections.has(5)) await section(ctx, 5, () => sectionAffinity(ctx))
  } finally {
    await Promise.all(liveProcesses().map((proc) => proc.stop(2000)))
  }
  ctx.sections.sort((a, b) => a.number - b.number)
  const rows = verdictRows(ctx)
  process.stdout.write(`\n${verdictText(rows)}\n\n${tally(rows)}\n`)
  for (const note of ctx.notes) process.stdout.write(`note: ${note}\n`)
  if (options.out) {
    const out = resolve(options.out)
    const command = `npm run perf${argv.length > 0 ? ` -- ${argv.join(' ')}` : ''}`
    await writeFileAtomic(
      out,
      renderDoc({
        date,
        command,
        machine,
        verdicts: rows,
        sections: ctx.sections,
        notes: ctx.notes,
        profile: ctx.profile,
      }),
    )
    process.stdout.write(`wrote ${relative(REPO, out)}\n`)
  }
  await rm(work, { recursive: true, force: true })
  return 0
}

process.exitCode = await main()
