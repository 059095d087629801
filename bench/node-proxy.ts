/**
 * The floor for a proxy written in Node on this machine, for `npm run perf` section 1:
 * `tsx bench/node-proxy.ts --port N --upstream URL`. node:http in front, an undici Pool behind,
 * the body read whole and sent back in one write. No routing, no validation, no logs, no metrics:
 * what velo adds beyond this is what velo's own work costs.
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
        const body = Buffer.from(await answer.body.arrayBuffer())
        res.writeHead(answer.statusCode, {
          'content-type': String(answer.headers['content-type'] ?? 'application/json'),
          'content-length': body.length,
        })
        res.end(body)
      })
      .catch((error: unknown) => {
        res.writeHead(502, { 'content-type': 'text/plain' })
        res.end(String(error))
      })
  })
}).listen(port, '127.0.0.1', () => console.log(`node proxy listening on ${port}`))
process.on('SIGTERM', () => process.exit(0))
