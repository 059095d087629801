import type { IncomingMessage, ServerResponse } from 'node:http'
import { VeloError } from '../core/errors.js'

/** Read a request body into one Buffer, refusing it as soon as it passes `limit` bytes. */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'])
  if (Number.isFinite(declared) && declared > limit) {
    return Promise.reject(tooLarge(limit))
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const onData = (chunk: Buffer): void => {
      size += chunk.length
      if (size > limit) {
        req.off('data', onData)
        // Stop reading; the rest is dropped with the connection after the response.
        req.resume()
        reject(tooLarge(limit))
        return
      }
      chunks.push(chunk)
    }
    req.on('data', onData)
    req.once('end', () => resolve(chunks.length === 1 && chunks[0] ? chunks[0] : Buffer.concat(chunks, size)))
    req.once('error', reject)
  })
}

function tooLarge(limit: number): VeloError {
  return new VeloError('VELO_PAYLOAD_TOO_LARGE', `request body is larger than ${limit} bytes`, {
    suggestion: 'raise server.bodyLimit in velo.yaml',
  })
}

/** Parse a JSON request body: the one parse a request gets. */
export function parseJsonBody(body: Buffer): Record<string, unknown> {
  let parsed: unknown
  try {
    parsed = JSON.parse(body.toString('utf8'))
  } catch (error) {
    throw new VeloError('VELO_BAD_REQUEST', `body: expected JSON (${(error as Error).message})`)
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new VeloError('VELO_BAD_REQUEST', 'body: expected a JSON object')
  }
  return parsed as Record<string, unknown>
}

export function sendJson(
  res: ServerResponse,
  status: number,
  value: unknown,
  headers: Record<string, string> = {},
): void {
  const body = JSON.stringify(value)
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  })
  res.end(body)
}

export function sendText(res: ServerResponse, status: number, text: string, contentType: string): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

/** Write a chunk and wait when the socket's buffer is full, so a slow client slows the upstream. */
export function writeChunk(res: ServerResponse, chunk: string | Buffer): Promise<void> | undefined {
  if (res.write(chunk)) return undefined
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done)
      res.off('close', done)
      resolve()
    }
    res.on('drain', done)
    res.on('close', done)
  })
}

export function headerValue(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name]
  return Array.isArray(value) ? value[0] : value
}
