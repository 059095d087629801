/**
 * The processes `npm run perf` measures: the bench upstream, velo serve, the Portkey gateway and
 * llama-server. Each runs in its own process group through spawnSupervised, on a free port.
 */
import { mkdir, readdir, writeFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { execa } from 'execa'
import { request } from 'undici'
import {
  freePort,
  type SpawnOptions,
  type SupervisedProcess,
  spawnSupervised,
  waitUntil,
} from '../../src/core/process/supervise.js'

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..')

/** Where a load generator sends chat completions. */
export interface Endpoint {
  name: string
  origin: string
  chatPath: string
  headers: Record<string, string>
}

export interface Service extends Endpoint {
  process: SupervisedProcess
  stop(): Promise<void>
}

const JSON_HEADERS = { 'content-type': 'application/json', authorization: 'Bearer sk-bench' }

async function get(url: string): Promise<{ status: number; text: string }> {
  const response = await request(url, { headersTimeout: 3000, bodyTimeout: 3000 })
  return { status: response.statusCode, text: await response.body.text() }
}

/** `node --import tsx bench/SCRIPT.ts ...`: the bench's own TypeScript processes. */
export function spawnBenchScript(
  script: string,
  args: string[],
  options: SpawnOptions = {},
): SupervisedProcess {
  return spawnSupervised(process.execPath, ['--import', 'tsx', join(REPO, 'bench', script), ...args], {
    cwd: REPO,
    ...options,
  })
}

/** Run a bench script to its end; throws with its output when it fails. */
export async function runBenchScript(script: string, args: string[]): Promise<void> {
  const proc = spawnBenchScript(script, args, { keepLines: 40 })
  const code = await proc.exited
  if (code !== 0) throw new Error(`bench/${script} exited (${code}):\n${proc.output()}`)
}

export async function startUpstream(options: { chunks: number; gapMs: number }): Promise<Service> {
  const port = await freePort()
  const proc = spawnBenchScript('upstream.ts', [
    '--port',
    String(port),
    '--chunks',
    String(options.chunks),
    '--gap-ms',
    String(options.gapMs),
  ])
  const origin = `http://127.0.0.1:${port}`
  await waitUntil(async () => (await get(`${origin}/health`)).status === 200, {
    timeoutMs: 30_000,
    process: proc,
    what: 'bench upstream',
  })
  return {
    name: 'direct',
    origin,
    chatPath: '/v1/chat/completions',
    headers: JSON_HEADERS,
    process: proc,
    stop: () => proc.stop(),
  }
}

/** bench/node-proxy.ts: the floor any Node proxy starts from (sections 1 and 2). */
export async function startNodeProxy(upstreamOrigin: string): Promise<Service> {
  const port = await freePort()
  const proc = spawnBenchScript('node-proxy.ts', ['--port', String(port), '--upstream', upstreamOrigin])
  const origin = `http://127.0.0.1:${port}`
  await waitUntil(async () => (await get(`${origin}/health`)).status === 200, {
    timeoutMs: 30_000,
    process: proc,
    what: 'bench node proxy',
  })
  return {
    name: NODE_PROXY,
    origin,
    chatPath: '/v1/chat/completions',
    headers: JSON_HEADERS,
    process: proc,
    stop: () => proc.stop(),
  }
}

export const NODE_PROXY = 'node proxy'

export const PORTKEY_DIR = join(REPO, 'node_modules', '@portkey-ai', 'gateway')

/**
 * The Portkey gateway from npm. Its start-server reads the port from `--port=N` (PORT is set too,
 * for versions that read it), prints "Ready for connections!" after a one-second spinner and answers
 * `GET /` with "AI Gateway says hey!"; `--headless` leaves out its log-streaming web UI.
 */
export async function startPortkey(upstreamV1: string): Promise<Service> {
  const port = await freePort()
  const proc = spawnSupervised(
    process.execPath,
    [join(PORTKEY_DIR, 'build', 'start-server.js'), `--port=${port}`, '--headless'],
    { cwd: REPO, env: { ...process.env, PORT: String(port) } },
  )
  const origin = `http://127.0.0.1:${port}`
  await waitUntil(async () => (await get(`${origin}/`)).status === 200, {
    timeoutMs: 30_000,
    process: proc,
    what: 'Portkey gateway',
  })
  return {
    name: 'Portkey',
    origin,
    chatPath: '/v1/chat/completions',
    headers: { ...JSON_HEADERS, 'x-portkey-provider': 'openai', 'x-portkey-custom-host': upstreamV1 },
    process: proc,
    stop: () => proc.stop(),
  }
}

export type VeloAvailability = { ok: true; flags: Set<string> } | { ok: false; reason: string }

/** Whether the built CLI has `serve` (dist/ may predate it), and which flags it takes. */
export async function veloServeAvailability(): Promise<VeloAvailability> {
  const result = await execa(process.execPath, [join(REPO, 'bin', 'run.js'), 'serve', '--help'], {
    cwd: REPO,
    reject: false,
    all: true,
    timeout: 60_000,
  })
  const text = result.all ?? ''
  if (result.exitCode !== 0 || !text.includes('--upstream')) {
    const first = text.split('\n').find((line) => line.trim() !== '') ?? `exit ${result.exitCode}`
    return { ok: false, reason: `\`node bin/run.js serve --help\` failed: ${first.trim()}` }
  }
  return {
    ok: true,
    flags: new Set([...text.matchAll(/--(?:\[no-\])?([a-z][a-z-]*)/g)].map((m) => m[1] ?? '')),
  }
}

export interface VeloOptions {
  name: string
  upstreams: string[]
  /** velo.yaml contents (JSON is YAML); the file isolates the run from the user's config. */
  config: Record<string, unknown>
  /** Ready once /v1/models lists these. */
  expectModels: string[]
  workDir: string
  flags: Set<string>
  cpuProfDir?: string | undefined
  readyTimeoutMs?: number
}

/**
 * `node bin/run.js serve --no-tui --port P --upstream URL --log-format json`, the way a user runs it,
 * optionally under `node --cpu-prof --cpu-prof-dir DIR` (the profile is written when velo exits).
 */
export async function startVelo(options: VeloOptions): Promise<Service> {
  const port = await freePort()
  const configFile = join(options.workDir, `${options.name}.velo.yaml`)
  await writeFile(configFile, `${JSON.stringify(options.config, null, 2)}\n`)
  const args = ['serve', '--no-tui', '--port', String(port), '--log-format', 'json', '--config', configFile]
  for (const url of options.upstreams) args.push('--upstream', url)
  if (options.flags.has('detect-ollama')) args.push('--no-detect-ollama')
  const nodeArgs: string[] = []
  if (options.cpuProfDir) {
    await mkdir(options.cpuProfDir, { recursive: true })
    nodeArgs.push(
      '--cpu-prof',
      '--cpu-prof-dir',
      options.cpuProfDir,
      '--cpu-prof-name',
      `${options.name}.cpuprofile`,
    )
  }
  // Its request log goes to a file: read through a pipe, it would cost the harness CPU that the
  // targets share (velo writes a line per request; the gateway and the upstream write none).
  const proc = spawnSupervised(process.execPath, [...nodeArgs, join(REPO, 'bin', 'run.js'), ...args], {
    cwd: REPO,
    keepLines: 80,
    outputFile: join(options.workDir, `${options.name}.log`),
  })
  const origin = `http://127.0.0.1:${port}`
  await waitUntil(
    async () => {
      const { status, text } = await get(`${origin}/v1/models`)
      if (status !== 200) return false
      const ids = new Set(
        ((JSON.parse(text) as { data?: { id?: unknown }[] }).data ?? []).map((model) => String(model.id)),
      )
      return options.expectModels.every((model) => ids.has(model))
    },
    { timeoutMs: options.readyTimeoutMs ?? 60_000, process: proc, what: `velo serve (${options.name})` },
  )
  return {
    name: 'velo',
    origin,
    chatPath: '/v1/chat/completions',
    headers: JSON_HEADERS,
    process: proc,
    // Graceful: velo finishes in-flight requests and exits, which is when --cpu-prof writes.
    stop: () => proc.stop(15_000),
  }
}

/** The `.cpuprofile` files in a folder, newest last. */
export async function cpuProfiles(dir: string): Promise<string[]> {
  const names = await readdir(dir).catch(() => [] as string[])
  return names
    .filter((name) => name.endsWith('.cpuprofile'))
    .sort()
    .map((name) => join(dir, name))
}

/** An endpoint without a process of its own (llama-server started by startLlamaServer). */
export function endpoint(name: string, origin: string): Endpoint {
  return { name, origin, chatPath: '/v1/chat/completions', headers: JSON_HEADERS }
}
