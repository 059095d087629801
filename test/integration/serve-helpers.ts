import { request } from 'undici'
import { parseConfig } from '../../src/core/config/load.js'
import type { VeloConfigInput } from '../../src/core/config/schema.js'
import { waitUntil } from '../../src/core/process/supervise.js'
import { createVeloServer, type VeloServer, type VeloServerOptions } from '../../src/proxy/server.js'
import type { VeloStatus } from '../../src/proxy/status-types.js'
import { required, rig } from '../helpers/rig.js'

/** velo serve in this process on a free port, with the rig's llama-server for managed models. */
export async function startVelo(
  config: VeloConfigInput,
  options: Partial<Omit<VeloServerOptions, 'config'>> = {},
): Promise<VeloServer> {
  const server = createVeloServer({
    config: parseConfig({ ...config, server: { port: 0, ...config.server } }),
    version: 'test',
    llamaServer: async () => required(rig().llamaServer, 'llama-server'),
    autoOllama: false,
    refreshIntervalMs: 0,
    ...options,
  })
  await server.start()
  return server
}

export async function getJson<T>(url: string): Promise<{ status: number; body: T }> {
  const response = await request(url)
  return { status: response.statusCode, body: (await response.body.json()) as T }
}

export async function postJson<T>(
  url: string,
  body: unknown,
): Promise<{ status: number; body: T; headers: Record<string, string | string[] | undefined> }> {
  const response = await request(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  const text = await response.body.text()
  return { status: response.statusCode, body: JSON.parse(text) as T, headers: response.headers }
}

export async function modelStatus(velo: VeloServer, id: string) {
  const { body } = await getJson<VeloStatus>(`${velo.url}/velo/status`)
  const model = body.models.find((entry) => entry.id === id)
  if (!model) throw new Error(`no model ${id} in /velo/status`)
  return model
}

/** The pid of a managed model's llama-server (from the manager; undefined when not running). */
export function managedPid(velo: VeloServer, id: string): number | undefined {
  return velo.managed.status().find((model) => model.id === id)?.pid
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

export function waitFor(
  what: string,
  probe: () => boolean | Promise<boolean>,
  timeoutMs = 60_000,
): Promise<void> {
  return waitUntil(async () => probe(), { timeoutMs, intervalMs: 50, what })
}
