import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { VeloStatus } from '../../src/proxy/status-types.js'

/**
 * A stand-in for `velo serve`'s status and admin endpoints (the contract in src/proxy/status-types.ts),
 * for testing `velo top` while serve is written alongside it. It can also produce faults a real
 * velo does not on demand: a stream that goes silent, a body that is not a snapshot.
 */
export interface FakeVelo {
  url: string
  port: number
  /** The snapshot it serves; tests change it between events. */
  status: VeloStatus
  /** Admin calls received, as `POST /velo/models/velo-tiny/unload` with the auth header. */
  calls: { method: string; path: string; authorization: string | undefined }[]
  /** Open status streams. */
  streams: number
  /** Send a snapshot on every stream now (events also go out every `intervalMs`). */
  push(): void
  close(): Promise<void>
}

export interface FakeVeloOptions {
  status: VeloStatus
  /** Time between events on the stream. */
  intervalMs?: number
  /** When set, every route needs `Authorization: Bearer <adminKey>`. */
  adminKey?: string
  /** Listen on this port (to come back after a restart on the same address). */
  port?: number
  /** `silent`: open the stream but never send; `json-only`: ignore Accept; `garbage`: not a snapshot. */
  mode?: 'normal' | 'silent' | 'json-only' | 'garbage'
  /** Model ids the admin routes accept; others get 404. Defaults to the status's models. */
  knownModels?: string[]
}

export async function startFakeVelo(options: FakeVeloOptions): Promise<FakeVelo> {
  const open = new Set<ServerResponse>()
  const send = (res: ServerResponse) => {
    res.write(`data: ${JSON.stringify(fake.status)}\n\n`)
  }
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/'
    if (options.adminKey && req.headers.authorization !== `Bearer ${options.adminKey}`) {
      res.writeHead(401, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ error: { message: 'invalid API key', type: 'authentication_error' } }))
      return
    }
    if (req.method === 'GET' && path === '/velo/status') {
      const wantsStream = String(req.headers.accept ?? '').includes('text/event-stream')
      if (options.mode === 'garbage') {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ hello: 'world' }))
        return
      }
      if (!wantsStream || options.mode === 'json-only') {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(JSON.stringify(fake.status))
        return
      }
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
      res.flushHeaders()
      open.add(res)
      fake.streams = open.size
      res.on('close', () => {
        open.delete(res)
        fake.streams = open.size
      })
      if (options.mode !== 'silent') send(res)
      return
    }
    const model = /^\/velo\/models\/([^/]+)\/(unload|load|pause|resume)$/.exec(path)
    if (req.method === 'POST' && (model || path === '/velo/cache/clear')) {
      fake.calls.push({ method: 'POST', path, authorization: req.headers.authorization })
      const known = options.knownModels ?? fake.status.models.map((m) => m.id)
      if (model && !known.includes(decodeURIComponent(model[1] ?? ''))) {
        res.writeHead(404, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ error: { message: 'model not found', type: 'invalid_request_error' } }))
        return
      }
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ ok: true }))
      return
    }
    res.writeHead(404, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ error: { message: `no route ${req.method} ${path}` } }))
  }
  const server: Server = createServer(handle)
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  const timer = setInterval(() => {
    if (options.mode === 'silent') return
    for (const res of open) send(res)
  }, options.intervalMs ?? 200)
  const fake: FakeVelo = {
    url: `http://127.0.0.1:${port}`,
    port,
    status: options.status,
    calls: [],
    streams: 0,
    push() {
      for (const res of open) send(res)
    },
    async close() {
      clearInterval(timer)
      for (const res of open) res.destroy()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
  return fake
}
