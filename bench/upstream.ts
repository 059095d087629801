/**
 * The fast local upstream for `npm run perf`: `tsx bench/upstream.ts --port N [--chunks 200]
 * [--gap-ms 1]`. An OpenAI-compatible server on node:http that answers every chat completion with the
 * same precomputed body, so what the harness measures is the proxy in front of it, not the upstream.
 *
 * Streaming requests get `--chunks` SSE chunks (or `max_tokens`, when smaller) `--gap-ms` apart (0: back
 * to back, one event-loop turn apart), each carrying as its content `~<process.hrtime.bigint()>~` at the moment it was written, so
 * the client can measure each chunk's one-way latency (see lib/sse.ts chunkStamp).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { parseArgs } from 'node:util'

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    chunks: { type: 'string', default: '200' },
    'gap-ms': { type: 'string', default: '1' },
  },
})
const port = Number(values.port)
const chunks = Number(values.chunks)
const gapMs = Number(values['gap-ms'])
if (!Number.isInteger(port) || port <= 0 || !Number.isInteger(chunks) || chunks < 1 || !(gapMs >= 0)) {
  console.error('usage: tsx bench/upstream.ts --port N [--chunks 200] [--gap-ms 1]')
  process.exit(2)
}

const MODEL = 'bench-model'
const created = Math.floor(Date.now() / 1000)

const completion = Buffer.from(
  JSON.stringify({
    id: 'chatcmpl-bench',
    object: 'chat.completion',
    created,
    model: MODEL,
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: 'The quick brown fox jumps over the lazy dog.' },
        finish_reason: 'stop',
      },
    ],
    usage: { prompt_tokens: 12, completion_tokens: 10, total_tokens: 22 },
  }),
)
const models = Buffer.from(
  JSON.stringify({ object: 'list', data: [{ id: MODEL, object: 'model', created, owned_by: 'bench' }] }),
)
const health = Buffer.from('{"status":"ok"}')

const chunkHead = `data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":${created},"model":"${MODEL}","choices":[{"index":0,"delta":{"content":"~`
const chunkTail = '~"},"finish_reason":null}]}\n\n'
const lastChunk = (count: number): string =>
  `data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":${created},"model":"${MODEL}","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":${count},"total_tokens":${count + 12}}}\n\ndata: [DONE]\n\n`

function json(res: ServerResponse, status: number, body: Buffer): void {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': body.length })
  res.end(body)
}

function stream(res: ServerResponse, count: number): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
  let sent = 0
  let closed = false
  res.once('close', () => {
    closed = true
  })
  const next = (): void => {
    if (closed) return
    res.write(`${chunkHead}${process.hrtime.bigint()}${chunkTail}`)
    sent++
    if (sent >= count) {
      res.end(lastChunk(count))
      return
    }
    if (gapMs > 0) setTimeout(next, gapMs)
    else setImmediate(next)
  }
  next()
}

function chat(req: IncomingMessage, res: ServerResponse): void {
  const parts: Buffer[] = []
  req.on('data', (part: Buffer) => parts.push(part))
  req.on('end', () => {
    const body = parts.length === 1 ? (parts[0] as Buffer).toString() : Buffer.concat(parts).toString()
    const maxTokens = /"max_tokens"\s*:\s*(\d+)/.exec(body)?.[1]
    if (/"stream"\s*:\s*true/.test(body))
      stream(res, Math.max(1, Math.min(chunks, Number(maxTokens ?? chunks))))
    else json(res, 200, completion)
  })
}

const server = createServer((req, res) => {
  const url = req.url ?? '/'
  if (req.method === 'POST' && url.endsWith('/chat/completions')) return chat(req, res)
  if (req.method === 'GET' && url.endsWith('/models')) return json(res, 200, models)
  if (req.method === 'GET' && (url === '/health' || url === '/v1/health')) return json(res, 200, health)
  req.resume()
  json(res, 404, Buffer.from(`{"error":{"message":"no route ${req.method} ${url}","type":"not_found"}}`))
})
server.keepAliveTimeout = 60_000
server.listen(port, '127.0.0.1', () => console.log(`bench upstream listening on ${port}`))
const stop = (): void => {
  server.close()
  server.closeAllConnections()
  process.exit(0)
}
process.once('SIGTERM', stop)
process.once('SIGINT', stop)
