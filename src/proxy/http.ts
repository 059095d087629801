import { isUtf8 } from 'node:buffer'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { VeloError } from '../core/errors.js'
import { fieldPath } from './translate/validate.js'

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

/**
 * How deep a request body may nest. Real requests (tool schemas included) stay far below; deeper
 * ones would overflow the stack of the recursive steps after parsing (JSON.stringify, the cache
 * key), which V8's iterative JSON.parse does not.
 */
export const MAX_JSON_DEPTH = 100

/**
 * Parse a JSON request body: the one parse a request gets. Beside JSON syntax it refuses what
 * parses here but breaks later, each with a 400 naming the field: bytes that are not UTF-8, nesting
 * deeper than MAX_JSON_DEPTH, strings with lone surrogates (`"\ud800"`) and numbers beyond a
 * double (`1e400`, which JSON.parse makes Infinity). Upstreams such as llama-server answer those
 * with a 500, and the body is forwarded as it came.
 */
export function parseJsonBody(body: Buffer): Record<string, unknown> {
  if (!isUtf8(body)) {
    throw new VeloError('VELO_BAD_REQUEST', 'body: expected UTF-8 text, got bytes that are not UTF-8')
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(body.toString('utf8'))
  } catch (error) {
    throw new VeloError('VELO_BAD_REQUEST', `body: expected JSON (${(error as Error).message})`)
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new VeloError('VELO_BAD_REQUEST', 'body: expected a JSON object')
  }
  const problem = unusableValue(parsed)
  if (problem) {
    // A path 100 levels deep is no use to read whole: its start says where.
    const field = fieldPath(problem.path)
    throw new VeloError(
      'VELO_BAD_REQUEST',
      `${field.length > 80 ? `${field.slice(0, 77)}...` : field}: ${problem.message}`,
    )
  }
  return parsed as Record<string, unknown>
}

/** With the `u` flag a paired surrogate is one code point; only a lone one is in category Cs. */
const LONE_SURROGATE = /\p{Cs}/u

/** An object or array met on the walk, with how it was reached (to name the field of a problem). */
interface Container {
  value: object
  key: PropertyKey | undefined
  parent: Container | undefined
  depth: number
}

interface Problem {
  path: PropertyKey[]
  message: string
}

function pathTo(container: Container, key: PropertyKey): PropertyKey[] {
  const path: PropertyKey[] = [key]
  for (let at: Container | undefined = container; at?.key !== undefined; at = at.parent) path.unshift(at.key)
  return path
}

/**
 * The first value JSON.parse accepted that velo or an upstream cannot use. The walk keeps only
 * containers on its stack (no recursion, no allocation per number or string), so a body of 200k
 * token ids costs a few milliseconds.
 */
function unusableValue(root: object): Problem | undefined {
  const stack: Container[] = [{ value: root, key: undefined, parent: undefined, depth: 1 }]
  const inspect = (child: unknown, key: PropertyKey, at: Container): Problem | undefined => {
    if (typeof child === 'string') {
      if (LONE_SURROGATE.test(child)) {
        return {
          path: pathTo(at, key),
          message: 'expected well-formed Unicode text, got a lone surrogate (\\ud800-\\udfff)',
        }
      }
    } else if (typeof child === 'number') {
      if (!Number.isFinite(child)) {
        return { path: pathTo(at, key), message: 'expected a number, got one too large for a double' }
      }
    } else if (child !== null && typeof child === 'object') {
      if (at.depth >= MAX_JSON_DEPTH) {
        return {
          path: pathTo(at, key),
          message: `expected JSON nested at most ${MAX_JSON_DEPTH} levels deep, got deeper`,
        }
      }
      stack.push({ value: child, key, parent: at, depth: at.depth + 1 })
    }
    return undefined
  }
  for (let at = stack.pop(); at; at = stack.pop()) {
    const value = at.value
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        const problem = inspect(value[i], i, at)
        if (problem) return problem
      }
    } else {
      for (const key of Object.keys(value)) {
        if (LONE_SURROGATE.test(key)) {
          return {
            path: pathTo(at, key),
            message: 'expected a well-formed Unicode key, got a lone surrogate',
          }
        }
        const problem = inspect((value as Record<string, unknown>)[key], key, at)
        if (problem) return problem
      }
    }
  }
  return undefined
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

/**
 * A percent-encoded path segment (the `{id}` of `/v1/models/{id}`), decoded. A malformed escape
 * (`%ZZ`, a cut-off `%E0%A4`) is the client's error: a 400 naming `field`, not a URIError.
 */
export function decodePathSegment(segment: string, field: string): string {
  try {
    return decodeURIComponent(segment)
  } catch {
    const shown = segment.length > 40 ? `${segment.slice(0, 37)}...` : segment
    throw new VeloError(
      'VELO_BAD_REQUEST',
      `${field}: expected a percent-encoded path segment, got "${shown}"`,
    )
  }
}

export function headerValue(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name]
  return Array.isArray(value) ? value[0] : value
}
