import type { ServerResponse } from 'node:http'
import { errorMessage, VeloError } from '../core/errors.js'

/** Which error body a client expects: by the path it called. */
export type ApiFamily = 'openai' | 'ollama' | 'velo'

export function familyOf(path: string): ApiFamily {
  if (path.startsWith('/v1/')) return 'openai'
  if (path.startsWith('/api/')) return 'ollama'
  return 'velo'
}

/** OpenAI's `error.type` for a status, as its own API reports them. */
function openaiType(status: number): string {
  if (status === 400 || status === 404 || status === 413) return 'invalid_request_error'
  if (status === 401) return 'authentication_error'
  if (status === 403) return 'permission_error'
  if (status === 429) return 'rate_limit_error'
  if (status === 501) return 'not_supported_error'
  return 'server_error'
}

/** The field a 400 names (`messages[0].role: expected ...`), for OpenAI's `param`. */
function badField(error: VeloError): string | null {
  if (error.status !== 400) return null
  return /^([^\s:]+): /.exec(error.message)?.[1] ?? null
}

/** Any thrown value as a VeloError; unknown errors become VELO_INTERNAL without their stack. */
export function asVeloError(error: unknown): VeloError {
  if (error instanceof VeloError) return error
  return new VeloError('VELO_INTERNAL', errorMessage(error))
}

/** The body a client of this family gets for an error: the one place errors become HTTP. */
export function errorBody(family: ApiFamily, error: VeloError): unknown {
  const message = error.suggestion ? `${error.message} (${error.suggestion})` : error.message
  switch (family) {
    case 'openai':
      return {
        error: { message, type: openaiType(error.status), param: badField(error), code: error.code },
      }
    case 'ollama':
      return { error: message }
    default:
      return { error: { code: error.code, message: error.message, suggestion: error.suggestion ?? null } }
  }
}

export function sendError(res: ServerResponse, family: ApiFamily, thrown: unknown): void {
  const error = asVeloError(thrown)
  if (res.headersSent) {
    // Mid-stream there is no status left to send: end the body so the client sees it stop.
    res.end()
    return
  }
  const body = JSON.stringify(errorBody(family, error))
  const headers: Record<string, string | number> = {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  }
  if (error.retryAfterSeconds !== undefined) headers['retry-after'] = Math.ceil(error.retryAfterSeconds)
  res.writeHead(error.status, headers)
  res.end(body)
}

/** The message inside an error body an upstream sent (OpenAI, Ollama or plain text). */
export function upstreamErrorMessage(text: string): string {
  try {
    const parsed = JSON.parse(text) as { error?: unknown; message?: unknown }
    if (typeof parsed.error === 'string') return parsed.error
    if (parsed.error && typeof parsed.error === 'object') {
      const inner = (parsed.error as { message?: unknown }).message
      if (typeof inner === 'string') return inner
    }
    if (typeof parsed.message === 'string') return parsed.message
  } catch {
    // Not JSON: the text itself is the message.
  }
  const trimmed = text.trim()
  return trimmed.length > 300 ? `${trimmed.slice(0, 297)}...` : trimmed || 'no details'
}
