/**
 * `npm run soak`: sustained mixed load through `velo serve` (the built CLI, as its own process)
 * in front of the rig's llama-server and, when installed, Ollama. It prints velo's heap,
 * RSS and open file descriptors at the start, periodically and at the end, with request and error
 * counts, so that growth under load shows. Not part of CI; docs/reliability.md has a measured run.
 *
 *   npm run build && npm run soak -- [--duration 10m] [--sample 30s] [--concurrency 6] [--no-ollama] [--json FILE]
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { cpus, loadavg, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { Agent, request } from 'undici'
import { parseDuration } from '../src/core/config/units.js'
import { type LlamaServer, startLlamaServer } from '../src/core/engine/llama-server.js'
import { findRigOllama, type OllamaServe, startOllamaServe } from '../src/core/engine/ollama-serve.js'
import { requireEngine } from '../src/core/engine/resolve.js'
import { writeFileAtomic } from '../src/core/fs-atomic.js'
import { ensureSynthModel } from '../src/core/models/synth.js'
import {
  freePort,
  type SupervisedProcess,
  spawnSupervised,
  waitUntil,
} from '../src/core/process/supervise.js'
import { REPO } from './lib/services.js'

const USAGE = `npm run build && npm run soak -- [options]
  --duration D     how long the load runs (default 10m; 30s, 2m, 1h)
  --sample D       how often velo's heap, RSS and fds are printed (default 30s)
  --concurrency N  clients sending at once (default 6)
  --no-ollama      leave Ollama out even when it is installed
  --json FILE      also write the samples and counts as JSON`

const LLAMA_MODEL = 'velo-tiny'
const OLLAMA_MODEL = 'soak-ollama'
/** llama-server's cap on every generation: the load is many short requests, not long ones. */
const MAX_TOKENS = 16

interface Options {
  durationMs: number
  sampleMs: number
  concurrency: number
  ollama: boolean
  json: string | undefined
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: 'string', default: '10m' },
      sample: { type: 'string', default: '30s' },
      concurrency: { type: 'string', default: '6' },
      'no-ollama': { type: 'boolean', default: false },
      json: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  })
  if (values.help) {
    process.stdout.write(`${USAGE}\n`)
    process.exit(0)
  }
  const durationMs = parseDuration(values.duration)
  const sampleMs = parseDuration(values.sample)
  const concurrency = Number(values.concurrency)
  if (durationMs === undefined || durationMs <= 0)
    fail(`--duration: expected a duration like 10m, got "${values.duration}"`)
  if (sampleMs === undefined || sampleMs <= 0)
    fail(`--sample: expected a duration like 30s, got "${values.sample}"`)
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    fail(`--concurrency: expected an integer >= 1, got "${values.concurrency}"`)
  }
  return { durationMs, sampleMs, concurrency, ollama: !values['no-ollama'], json: values.json }
}

function fail(message: string): never {
  process.stderr.write(`soak: ${message}\n${USAGE}\n`)
  process.exit(2)
}

const started = performance.now()
const log = (line: string): void => {
  process.stderr.write(
    `[+${String(Math.round((performance.now() - started) / 1000)).padStart(4)}s] ${line}\n`,
  )
}

// ---------------------------------------------------------------------------------------------
// The engines and velo

/** `ollama serve` with its home in `dir`, serving the tiny synthetic model as OLLAMA_MODEL. */
async function startOllama(binary: string, gguf: string, dir: string): Promise<OllamaServe> {
  const ollama = await startOllamaServe({
    binary,
    home: dir,
    env: { OLLAMA_KEEP_ALIVE: '1h', OLLAMA_NUM_PARALLEL: '1' },
    keepLines: 40,
  })
  // Random weights rarely stop on their own: num_predict bounds each answer, as --n-predict does.
  // One thread: Ollama's CPU backend would otherwise take every core from llama-server.
  await ollama.create(OLLAMA_MODEL, gguf, {
    parameters: { num_ctx: 2048, num_predict: MAX_TOKENS, num_thread: 1 },
    timeoutMs: 180_000,
  })
  return ollama
}

/**
 * `velo serve` the way a user runs it (`bin/run.js`, the built CLI: run `npm run build` first),
 * as its own process, with a config of its own.
 */
async function startVelo(
  dir: string,
  upstreams: Record<string, unknown>[],
): Promise<{ url: string; proc: SupervisedProcess; inspectPort: number }> {
  const port = await freePort()
  const inspectPort = await freePort()
  const config = join(dir, 'velo.yaml')
  // JSON is YAML. The exact cache is on (velo's default), so repeated deterministic requests hit it.
  await writeFile(config, `${JSON.stringify({ upstreams, server: { shutdownTimeout: '5s' } }, null, 2)}\n`)
  // The inspector (loopback only) lets the soak ask for a full GC before each sample.
  const args = [`--inspect=127.0.0.1:${inspectPort}`, join(REPO, 'bin', 'run.js'), 'serve', '--no-tui']
  args.push('--no-detect-ollama', '--port', String(port), '--config', config, '--log-format', 'json')
  const proc = spawnSupervised(process.execPath, args, {
    cwd: REPO,
    keepLines: 60,
    env: { ...process.env, XDG_CONFIG_HOME: join(dir, 'config') },
  })
  const url = `http://127.0.0.1:${port}`
  await waitUntil(async () => (await get(`${url}/ready`)).status === 200, {
    timeoutMs: 120_000,
    process: proc,
    what: 'velo serve',
  })
  return { url, proc, inspectPort }
}

interface Inspector {
  /** A full, blocking GC in velo: what the heap holds afterwards is what velo keeps. */
  collectGarbage(): Promise<void>
  close(): void
}

/** velo's V8 inspector, over the DevTools protocol (`HeapProfiler.collectGarbage`). */
async function connectInspector(port: number): Promise<Inspector> {
  const targets = JSON.parse((await get(`http://127.0.0.1:${port}/json/list`)).text) as {
    webSocketDebuggerUrl?: string
  }[]
  const address = targets[0]?.webSocketDebuggerUrl
  if (!address) throw new Error(`velo's inspector on port ${port} lists no target`)
  const socket = new WebSocket(address)
  await new Promise<void>((resolve, reject) => {
    socket.addEventListener('open', () => resolve(), { once: true })
    socket.addEventListener('error', () => reject(new Error(`cannot connect to ${address}`)), { once: true })
  })
  const pending = new Map<number, () => void>()
  socket.addEventListener('message', (event) => {
    const message = JSON.parse(String(event.data)) as { id?: number }
    if (message.id === undefined) return
    pending.get(message.id)?.()
    pending.delete(message.id)
  })
  let next = 0
  return {
    collectGarbage: () =>
      new Promise<void>((resolve) => {
        const id = ++next
        pending.set(id, resolve)
        socket.send(JSON.stringify({ id, method: 'HeapProfiler.collectGarbage' }))
      }),
    close: () => socket.close(),
  }
}

async function get(url: string): Promise<{ status: number; text: string }> {
  const response = await request(url, { headersTimeout: 10_000, bodyTimeout: 10_000 })
  return { status: response.statusCode, text: await response.body.text() }
}

// ---------------------------------------------------------------------------------------------
// Samples of velo's process

interface Sample {
  atS: number
  label: string
  heapUsedMiB: number
  heapTotalMiB: number
  rssMiB: number
  fds: number
  requests: number
  errors: number
  /** Requests velo runs upstream and holds in its queues at this moment (all models). */
  active: number
  queued: number
  /** What the exact cache holds (bounded by cache.exact.maxBytes): heap growth it explains. */
  cacheMiB: number
}

const MiB = 1024 ** 2

/**
 * After a full GC in velo: its heap from its own /metrics (prom-client's Node metrics), RSS and
 * fds from /proc.
 */
async function sample(
  label: string,
  velo: { url: string; pid: number; inspector: Inspector },
  counts: Counts,
): Promise<Sample> {
  await velo.inspector.collectGarbage()
  const metrics = (await get(`${velo.url}/metrics`)).text
  const lines = metrics.split('\n')
  const metric = (name: string): number => {
    const line = lines.find((text) => text.startsWith(`${name} `) || text.startsWith(`${name}{`))
    return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : Number.NaN
  }
  const sum = (name: string): number =>
    lines
      .filter((text) => text.startsWith(`${name}{`) || text.startsWith(`${name} `))
      .reduce((total, text) => total + Number(text.slice(text.lastIndexOf(' ') + 1)), 0)
  const status = readFileSync(`/proc/${velo.pid}/status`, 'utf8')
  const rssKiB = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? Number.NaN)
  return {
    atS: Math.round((performance.now() - started) / 1000),
    label,
    heapUsedMiB: round(metric('nodejs_heap_size_used_bytes') / MiB),
    heapTotalMiB: round(metric('nodejs_heap_size_total_bytes') / MiB),
    rssMiB: round((rssKiB * 1024) / MiB),
    fds: readdirSync(`/proc/${velo.pid}/fd`).length,
    requests: counts.total(),
    errors: counts.errors(),
    active: sum('velo_active_requests'),
    queued: sum('velo_queue_depth'),
    cacheMiB: round(sum('velo_cache_bytes') / MiB),
  }
}

const round = (value: number): number => Math.round(value * 10) / 10

function sampleLine(s: Sample): string {
  return `${s.label.padEnd(6)} heap ${s.heapUsedMiB.toFixed(1).padStart(6)} MiB (of ${s.heapTotalMiB.toFixed(1)})  rss ${s.rssMiB.toFixed(1).padStart(6)} MiB  fds ${String(s.fds).padStart(4)}  requests ${String(s.requests).padStart(6)}  errors ${s.errors}  cache ${s.cacheMiB} MiB  active ${s.active}  queued ${s.queued}`
}

// ---------------------------------------------------------------------------------------------
// The load

type Outcome = 'ok' | 'error'

class Counts {
  readonly byScenario = new Map<
    string,
    { ok: number; error: number; totalMs: number; maxMs: number; lastError?: string }
  >()

  add(scenario: string, outcome: Outcome, ms: number, detail?: string): void {
    const entry = this.byScenario.get(scenario) ?? { ok: 0, error: 0, totalMs: 0, maxMs: 0 }
    entry[outcome]++
    entry.totalMs += ms
    entry.maxMs = Math.max(entry.maxMs, ms)
    if (outcome === 'error' && detail) entry.lastError = detail
    this.byScenario.set(scenario, entry)
  }

  total(): number {
    let sum = 0
    for (const entry of this.byScenario.values()) sum += entry.ok + entry.error
    return sum
  }

  errors(): number {
    let sum = 0
    for (const entry of this.byScenario.values()) sum += entry.error
    return sum
  }
}

interface Scenario {
  name: string
  weight: number
  /** Resolves with what happened, judged against what this scenario expects. */
  run(base: string, dispatcher: Agent, n: number): Promise<{ outcome: Outcome; detail?: string }>
}

const PROMPTS = ['Say something short about the sea.', 'Name a colour.', 'Count to three.', 'Hello there!']

function chat(model: string, n: number, extra: Record<string, unknown>): string {
  return JSON.stringify({
    model,
    messages: [{ role: 'user', content: `${PROMPTS[n % PROMPTS.length]} (${n})` }],
    max_tokens: MAX_TOKENS,
    temperature: 0.8,
    ...extra,
  })
}

/** POST a body; `expect` is the status this scenario should get (2xx, or a 4xx for bad input). */
async function post(
  base: string,
  dispatcher: Agent,
  path: string,
  body: string,
  expect: (status: number) => boolean,
): Promise<{ outcome: Outcome; detail?: string }> {
  const response = await request(`${base}${path}`, {
    method: 'POST',
    dispatcher,
    headers: { 'content-type': 'application/json' },
    body,
    headersTimeout: 120_000,
    bodyTimeout: 120_000,
  })
  const text = await response.body.text()
  if (expect(response.statusCode)) return { outcome: 'ok' }
  return { outcome: 'error', detail: `${path} ${response.statusCode}: ${text.slice(0, 200)}` }
}

const ok2xx = (status: number): boolean => status >= 200 && status < 300
const is4xx = (status: number): boolean => status >= 400 && status < 500

const BAD_BODIES: [string, string][] = [
  ['/v1/chat/completions', '{"model":'],
  [
    '/v1/chat/completions',
    JSON.stringify({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }),
  ],
  ['/v1/chat/completions', JSON.stringify({ model: LLAMA_MODEL, messages: 'hello' })],
  ['/api/chat', JSON.stringify({ model: LLAMA_MODEL, messages: [{ role: 'bot', content: 'x' }] })],
  ['/v1/embeddings', JSON.stringify({ model: LLAMA_MODEL, input: [] })],
  ['/api/generate', `{"model":"${LLAMA_MODEL}","prompt":"x","extra":${'['.repeat(500)}${']'.repeat(500)}}`],
  ['/v1/completions', ''],
]

function scenarios(): Scenario[] {
  const list: Scenario[] = [
    {
      name: 'chat',
      weight: 20,
      run: (base, d, n) => post(base, d, '/v1/chat/completions', chat(LLAMA_MODEL, n, {}), ok2xx),
    },
    {
      name: 'chat stream',
      weight: 20,
      run: (base, d, n) =>
        post(base, d, '/v1/chat/completions', chat(LLAMA_MODEL, n, { stream: true }), ok2xx),
    },
    {
      // temperature 0 and one of four prompts: after the first of each, the exact cache answers.
      name: 'cache hit',
      weight: 10,
      run: (base, d, n) =>
        post(
          base,
          d,
          '/v1/chat/completions',
          JSON.stringify({
            model: LLAMA_MODEL,
            messages: [{ role: 'user', content: PROMPTS[n % PROMPTS.length] }],
            max_tokens: MAX_TOKENS,
            temperature: 0,
          }),
          ok2xx,
        ),
    },
    {
      name: 'ollama api chat',
      weight: 10,
      run: (base, d, n) =>
        post(
          base,
          d,
          '/api/chat',
          JSON.stringify({
            model: LLAMA_MODEL,
            messages: [{ role: 'user', content: `${PROMPTS[n % PROMPTS.length]} (${n})` }],
            options: { num_predict: MAX_TOKENS },
          }),
          ok2xx,
        ),
    },
    {
      name: 'embeddings',
      weight: 10,
      run: (base, d, n) =>
        n % 2 === 0
          ? post(
              base,
              d,
              '/v1/embeddings',
              JSON.stringify({ model: LLAMA_MODEL, input: [`text ${n}`, 'more'] }),
              ok2xx,
            )
          : post(base, d, '/api/embed', JSON.stringify({ model: LLAMA_MODEL, input: `text ${n}` }), ok2xx),
    },
    {
      name: 'bad request',
      weight: 10,
      run: (base, d, n) => {
        const [path, body] = BAD_BODIES[n % BAD_BODIES.length] as [string, string]
        return post(base, d, path, body, is4xx)
      },
    },
    {
      name: 'disconnect',
      weight: 8,
      run: (base, d, n) => disconnectMidStream(base, d, n),
    },
    {
      name: 'listings',
      weight: 2,
      run: async (base, d, n) => {
        const path = ['/v1/models', '/api/tags', '/velo/status', '/metrics', '/api/ps'][n % 5] ?? '/health'
        const response = await request(`${base}${path}`, { dispatcher: d, headersTimeout: 30_000 })
        const text = await response.body.text()
        return ok2xx(response.statusCode)
          ? { outcome: 'ok' }
          : { outcome: 'error', detail: `${path} ${response.statusCode}: ${text.slice(0, 200)}` }
      },
    },
  ]
  return list
}

/**
 * Chats to the Ollama model, OpenAI and Ollama clients in turn. Ollama on a few busy cores takes
 * seconds per answer, so one client of its own sends these; in the weighted mix they would hold
 * every client.
 */
const OLLAMA_SCENARIO: Scenario = {
  name: 'ollama upstream',
  weight: 1,
  run: (base, d, n) =>
    n % 2 === 0
      ? post(base, d, '/v1/chat/completions', chat(OLLAMA_MODEL, n, { stream: n % 4 === 0 }), ok2xx)
      : post(
          base,
          d,
          '/api/chat',
          JSON.stringify({
            model: OLLAMA_MODEL,
            messages: [{ role: 'user', content: PROMPTS[n % PROMPTS.length] }],
            stream: false,
          }),
          ok2xx,
        ),
}

/** A client that reads the first bytes of a stream and hangs up: velo must free the slot. */
async function disconnectMidStream(
  base: string,
  dispatcher: Agent,
  n: number,
): Promise<{ outcome: Outcome; detail?: string }> {
  const abort = new AbortController()
  const response = await request(`${base}/v1/chat/completions`, {
    method: 'POST',
    dispatcher,
    headers: { 'content-type': 'application/json' },
    body: chat(LLAMA_MODEL, n, { stream: true, max_tokens: 512 }),
    signal: abort.signal,
    headersTimeout: 120_000,
  })
  if (response.statusCode !== 200) {
    const text = await response.body.text()
    return { outcome: 'error', detail: `disconnect: ${response.statusCode} ${text.slice(0, 200)}` }
  }
  try {
    for await (const _chunk of response.body) {
      abort.abort()
      break
    }
  } catch {
    // The abort ends the body with an error on this side: that is the point.
  }
  return { outcome: 'ok' }
}

function pick(list: Scenario[], roll: number): Scenario {
  const total = list.reduce((sum, scenario) => sum + scenario.weight, 0)
  let at = roll * total
  for (const scenario of list) {
    at -= scenario.weight
    if (at < 0) return scenario
  }
  return list[list.length - 1] as Scenario
}

async function worker(
  base: string,
  list: Scenario[],
  counts: Counts,
  deadline: number,
  dispatcher: Agent,
  seq: { n: number },
): Promise<void> {
  while (Date.now() < deadline) {
    const n = seq.n++
    const scenario = pick(list, Math.random())
    const began = performance.now()
    try {
      const result = await scenario.run(base, dispatcher, n)
      counts.add(scenario.name, result.outcome, performance.now() - began, result.detail)
    } catch (error) {
      counts.add(
        scenario.name,
        'error',
        performance.now() - began,
        error instanceof Error ? `${error.name}: ${error.message}` : String(error),
      )
    }
  }
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2))
  if (!existsSync(join(REPO, 'dist', 'commands', 'serve.js'))) {
    fail('no built CLI (dist/commands/serve.js): run `npm run build` first')
  }
  const dir = await mkdtemp(join(tmpdir(), 'velo-soak-'))
  const stops: (() => Promise<void>)[] = []
  let code = 0
  try {
    const engine = await requireEngine()
    const gguf = await ensureSynthModel('tiny')
    log(`llama-server ${engine.serverPath}`)
    // One thread: on a few busy cores llama.cpp's threads wait on each other for seconds when one
    // is descheduled (seen: 20 s stalls at load 6 on 2 cores); the tiny model needs no more.
    const llama: LlamaServer = await startLlamaServer({
      serverPath: engine.serverPath,
      model: gguf,
      alias: LLAMA_MODEL,
      args: ['--ctx-size', '4096', '--parallel', '4', '--embeddings', '--pooling', 'mean'].concat([
        '--n-predict',
        String(MAX_TOKENS),
        '--threads',
        '1',
        '--threads-batch',
        '1',
      ]),
    })
    stops.push(() => llama.stop())
    const upstreams: Record<string, unknown>[] = [{ url: llama.url, kind: 'openai', name: 'llama' }]
    let withOllama = false
    if (options.ollama) {
      const binary = await findRigOllama()
      if (binary) {
        log(`ollama ${binary}`)
        const ollama = await startOllama(binary, gguf, join(dir, 'ollama'))
        stops.push(() => ollama.stop())
        upstreams.push({ url: ollama.url, kind: 'ollama', name: 'ollama' })
        withOllama = true
      } else log('no ollama found (OLLAMA_BIN, the rig cache or PATH): the load leaves it out')
    }
    const velo = await startVelo(dir, upstreams)
    stops.unshift(() => velo.proc.stop(15_000))
    let veloExited = false
    void velo.proc.exited.then(() => {
      veloExited = true
    })
    const inspector = await connectInspector(velo.inspectPort)
    stops.unshift(async () => inspector.close())
    const target = { url: velo.url, pid: velo.proc.pid, inspector }
    log(
      `velo serve ${velo.url} (pid ${target.pid}); load for ${options.durationMs / 1000} s, ${options.concurrency} clients`,
    )

    const counts = new Counts()
    const samples: Sample[] = []
    const record = async (label: string): Promise<void> => {
      const s = await sample(label, target, counts)
      samples.push(s)
      log(sampleLine(s))
    }
    await record('start')
    const list = scenarios()
    const dispatcher = new Agent({ connections: options.concurrency * 2 })
    const deadline = Date.now() + options.durationMs
    const seq = { n: 0 }
    const timer = setInterval(
      () => void record('sample').catch((error: unknown) => log(`sample failed: ${String(error)}`)),
      options.sampleMs,
    )
    const clients = Array.from({ length: options.concurrency }, () =>
      worker(velo.url, list, counts, deadline, dispatcher, seq),
    )
    if (withOllama) clients.push(worker(velo.url, [OLLAMA_SCENARIO], counts, deadline, dispatcher, seq))
    await Promise.all(clients)
    clearInterval(timer)
    await dispatcher.close()
    // Let velo settle (keep-alive sockets close, aborted upstream requests finish) before the last look.
    await new Promise((resolve) => setTimeout(resolve, 5_000))
    await record('end')
    const veloCounts = await velosOwnCounts(velo.url)

    const first = samples[0] as Sample
    const last = samples[samples.length - 1] as Sample
    const peak = (key: 'heapUsedMiB' | 'rssMiB' | 'fds'): number => Math.max(...samples.map((s) => s[key]))
    process.stdout.write('\nscenario              ok errors  mean ms   max ms  last error\n')
    for (const [name, entry] of counts.byScenario) {
      const mean = entry.totalMs / Math.max(1, entry.ok + entry.error)
      process.stdout.write(
        `${name.padEnd(17)} ${String(entry.ok).padStart(6)} ${String(entry.error).padStart(6)} ${mean.toFixed(0).padStart(8)} ${entry.maxMs.toFixed(0).padStart(8)}  ${entry.lastError ?? ''}\n`,
      )
    }
    process.stdout.write(`\nvelo_requests_total by status: ${JSON.stringify(veloCounts)}\n`)
    process.stdout.write(
      `\n          start     end    peak\nheap MiB ${first.heapUsedMiB.toFixed(1).padStart(6)} ${last.heapUsedMiB.toFixed(1).padStart(7)} ${peak('heapUsedMiB').toFixed(1).padStart(7)}\nrss MiB  ${first.rssMiB.toFixed(1).padStart(6)} ${last.rssMiB.toFixed(1).padStart(7)} ${peak('rssMiB').toFixed(1).padStart(7)}\nfds      ${String(first.fds).padStart(6)} ${String(last.fds).padStart(7)} ${String(peak('fds')).padStart(7)}\nrequests ${counts.total()} in ${Math.round(options.durationMs / 1000)} s (${(counts.total() / (options.durationMs / 1000)).toFixed(1)}/s), ${counts.errors()} unexpected\n`,
    )
    if (options.json) {
      const report = {
        date: new Date().toISOString(),
        machine: {
          cpu: cpus()[0]?.model.trim(),
          cores: cpus().length,
          ramGiB: round(totalmem() / 1024 ** 3),
          loadAtEnd: loadavg()[0],
        },
        options: { ...options, ollama: withOllama },
        samples,
        scenarios: Object.fromEntries(counts.byScenario),
        veloRequests: veloCounts,
      }
      await writeFileAtomic(options.json, `${JSON.stringify(report, null, 2)}\n`)
    }
    if (counts.errors() > 0) code = 1
    if (veloExited) {
      log(`velo exited during the soak:\n${velo.proc.output()}`)
      code = 1
    }
  } finally {
    for (const stop of stops) await stop().catch((error: unknown) => log(`stop failed: ${String(error)}`))
    await rm(dir, { recursive: true, force: true })
  }
  process.exitCode = code
}

/** velo's own count of the requests it answered, by status (from velo_requests_total). */
async function velosOwnCounts(base: string): Promise<Record<string, number>> {
  const text = (await get(`${base}/metrics`)).text
  const byStatus: Record<string, number> = {}
  for (const line of text.split('\n')) {
    const match = /^velo_requests_total\{.*status="(\d+)".*\} (\d+)/.exec(line)
    if (match) byStatus[match[1] as string] = (byStatus[match[1] as string] ?? 0) + Number(match[2])
  }
  return byStatus
}

main().catch((error: unknown) => {
  process.stderr.write(`soak: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
  process.exitCode = 1
})
