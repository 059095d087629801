/**
 * velo's calls to itself. The semantic cache embeds through velo's own `/v1/embeddings`, so the
 * embedding model gets the same loading, queueing and API translation as a client's request. With
 * `auth.keys` set that call needs a key, and borrowing one from the config would tie the cache to a
 * key an operator may rename, restrict or revoke. Instead each process draws a random token at start:
 * it lives only in this module's memory (never in the config, a log or a response), so only code in
 * this process can present it, and it opens the embeddings route and nothing else.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto'
import { type Principal, sha256Hex } from './keys.js'

const token = randomBytes(32).toString('base64url')
const tokenDigest = Buffer.from(sha256Hex(token), 'hex')

/** The only paths the internal token authenticates. */
const INTERNAL_PATHS: ReadonlySet<string> = new Set(['/v1/embeddings'])

/** Who velo's own embedding calls act as: any model, no rate limit, never an admin. */
export const INTERNAL_PRINCIPAL: Principal = Object.freeze({
  name: 'velo-semantic-cache',
  scope: 'user',
  bucketId: 'velo-semantic-cache',
  rpm: undefined,
  tpm: undefined,
  models: ['*'],
  allows: () => true,
})

/** The header velo's in-process calls to itself send. */
export function internalAuthorization(): string {
  return `Bearer ${token}`
}

/** Whether a presented token is this process's internal token, on a path it may open. */
export function isInternalCall(path: string, presented: string): boolean {
  if (!INTERNAL_PATHS.has(path)) return false
  return timingSafeEqual(Buffer.from(sha256Hex(presented), 'hex'), tokenDigest)
}
