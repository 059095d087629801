/**
 * The floor for a proxy written in Node on this machine, for `npm run perf` sections 1 and 2:
 * `tsx bench/node-proxy.ts --port N --upstream URL`. node:http in front, an undici Pool behind; a
 * plain answer read whole and sent back in one write, an event stream passed on chunk by chunk as
 * it arrives. No routing, no validation, no logs, no metrics: what velo adds beyond this is what
 * velo's own work costs.
 */
import { createServer } from 'node:http'
import { parseArgs } from 'node:util'
import { Pool } from 'undici'

const { values } = parseArgs({ options: { port: { type: 'string' }, upstream: { type: 'string' } } })
const port = Number(values.port)
if (!Number.isInteger(port) || port <= 0 || !values.upstream) {
  console.error('usage: tsx bench/node-proxy.ts --port N --upstream http://127.0.0.1:PORT')
  process.exit(2)
}
const pool = new Pool(values.upstream, { connections: 256 })

createServer((req, res) => {
  const chunks: Buffer[] = []
  req.on('data', (chunk: Buffer) => chunks.push(chunk))
  req.on('end', () => {
    pool
      .request({
        path: req.url ?? '/',
        method: req.method === 'GET' ? 'GET' : 'POST',
        headers: { 'content-type': 'application/json' },
        body: req.method === 'GET' ? null : Buffer.concat(chunks),
      })
      .then(async (answer) => {
        const contentType = String(answer.headers['content-type'] ?? 'application/json')
        if (contentType.startsWith('text/event-stream')) {
          res.writeHead(answer.statusCode, { 'content-type': contentType, 'cache-control': 'no-cache' })
          for await (const chunk of answer.body) {
            if (!res.write(chunk)) await new Promise((resolve) => res.once('drain', resolve))
          }
          res.end()
          return
        }
        const body = Buffer.from(await answer.body.arrayBuffer())
        res.writeHead(answer.statusCode, {
          'content-type': contentType,
          'content-length': body.length,
        })
        res.end(body)
      })
      .catch((error: unknown) => {
        if (res.headersSent) {
          res.destroy()
          return
        }
        res.writeHead(502, { 'content-type': 'text/plain' })
        res.end(String(error))
      })
  })
}).listen(port, '127.0.0.1', () => console.log(`node proxy listening on ${port}`))
process.on('SIGTERM', () => process.exit(0))
