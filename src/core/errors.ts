/** Stable error codes: scripts and the proxy's error bodies rely on them. */
export type VeloErrorCode =
  | 'VELO_BAD_REQUEST'
  | 'VELO_CONFIG_INVALID'
  | 'VELO_ENGINE_BUILD_FAILED'
  | 'VELO_ENGINE_NOT_FOUND'
  | 'VELO_GGUF_INVALID'
  | 'VELO_MODEL_NOT_FOUND'
  | 'VELO_NOT_FOUND'
  | 'VELO_PAYLOAD_TOO_LARGE'
  | 'VELO_PROCESS_FAILED'
  | 'VELO_UPSTREAM_ERROR'
  | 'VELO_UPSTREAM_TIMEOUT'
  | 'VELO_UPSTREAM_UNREACHABLE'
  /** Every upstream of the model has its circuit breaker open (503 with Retry-After). */
  | 'VELO_UPSTREAM_UNAVAILABLE'
  | 'VELO_OVERLOADED'
  | 'VELO_QUEUE_FULL'
  | 'VELO_QUEUE_TIMEOUT'
  | 'VELO_TOOL_CALL_INVALID'
  | 'VELO_INTERNAL'
  | 'VELO_UNAUTHORIZED'
  | 'VELO_FORBIDDEN'
  | 'VELO_RATE_LIMITED'

export interface VeloErrorOptions {
  /** What a person can do about it. */
  suggestion?: string
  /** HTTP status when the proxy maps it to a response. */
  status?: number
  /** CLI exit code. */
  exitCode?: number
  /** For 429/503: how long the client should wait before retrying (`Retry-After`). */
  retryAfterSeconds?: number
  cause?: unknown
}

export class VeloError extends Error {
  readonly code: VeloErrorCode
  readonly suggestion: string | undefined
  readonly status: number
  readonly exitCode: number
  readonly retryAfterSeconds: number | undefined

  constructor(code: VeloErrorCode, message: string, options: VeloErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'VeloError'
    this.code = code
    this.suggestion = options.suggestion
    this.status = options.status ?? defaultStatus(code)
    this.exitCode = options.exitCode ?? 1
    this.retryAfterSeconds = options.retryAfterSeconds
  }
}

function defaultStatus(code: VeloErrorCode): number {
  switch (code) {
    case 'VELO_BAD_REQUEST':
    case 'VELO_CONFIG_INVALID':
    case 'VELO_GGUF_INVALID':
      return 400
    case 'VELO_UNAUTHORIZED':
      return 401
    case 'VELO_FORBIDDEN':
      return 403
    case 'VELO_MODEL_NOT_FOUND':
    case 'VELO_NOT_FOUND':
      return 404
    case 'VELO_PAYLOAD_TOO_LARGE':
      return 413
    case 'VELO_QUEUE_FULL':
    case 'VELO_QUEUE_TIMEOUT':
    case 'VELO_RATE_LIMITED':
      return 429
    case 'VELO_OVERLOADED':
    case 'VELO_UPSTREAM_UNAVAILABLE':
      return 503
    case 'VELO_UPSTREAM_TIMEOUT':
      return 504
    case 'VELO_UPSTREAM_ERROR':
    case 'VELO_UPSTREAM_UNREACHABLE':
    case 'VELO_TOOL_CALL_INVALID':
      return 502
    default:
      return 500
  }
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
