/**
 * API keys from `auth.keys`: who a bearer token is, what it may call and which models it may use.
 * Keys are looked up by their SHA-256, so a configured hash (`sha256:...`) and a plain key are the
 * same to velo, and the secret itself is never kept beside the names it is logged under.
 */
import { createHash, randomBytes } from 'node:crypto'
import type { VeloConfig } from '../../core/config/schema.js'

export type KeyScope = 'user' | 'admin'

/** One configured key, as a request that presented it is known by. */
export interface Principal {
  /** The key's name, or `key-N` (its position) when it has none: what logs and metrics show. */
  readonly name: string
  readonly scope: KeyScope
  /** Stable id for rate-limit buckets: the name, never the secret. */
  readonly bucketId: string
  readonly rpm: number | undefined
  readonly tpm: number | undefined
  /** Whether this key may use the model of this name. */
  allows(name: string): boolean
  /** The allowlist as written. */
  readonly models: readonly string[]
}

const HASHED = /^sha256:([0-9a-f]{64})$/i

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex')
}

/** A new random key (`sk-velo-` and 32 bytes of base64url) and the `sha256:` form to put in velo.yaml. */
export function createKey(): { key: string; hashed: string } {
  const key = `sk-velo-${randomBytes(32).toString('base64url')}`
  return { key, hashed: `sha256:${sha256Hex(key)}` }
}

/** `qwen*` -> /^qwen.*$/; every other character literal. */
function patternMatcher(patterns: readonly string[]): (name: string) => boolean {
  if (patterns.includes('*')) return () => true
  const exact = new Set(patterns.filter((pattern) => !pattern.includes('*')))
  const globs = patterns
    .filter((pattern) => pattern.includes('*'))
    .map(
      (pattern) =>
        new RegExp(
          `^${pattern
            .split('*')
            .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
            .join('.*')}$`,
        ),
    )
  return (name) => exact.has(name) || globs.some((glob) => glob.test(name))
}

export class KeyRing {
  private readonly byDigest = new Map<string, Principal>()

  constructor(keys: VeloConfig['auth']['keys']) {
    keys.forEach((entry, index) => {
      const digest = HASHED.exec(entry.key)?.[1]?.toLowerCase() ?? sha256Hex(entry.key)
      const name = entry.name ?? `key-${index + 1}`
      const matches = patternMatcher(entry.models)
      this.byDigest.set(digest, {
        name,
        scope: entry.scope,
        bucketId: name,
        rpm: entry.rpm,
        tpm: entry.tpm,
        models: entry.models,
        allows: matches,
      })
    })
  }

  /** Keys are configured: every request but the open paths must carry one. */
  get enabled(): boolean {
    return this.byDigest.size > 0
  }

  /** The principal of a presented token, or undefined when no key matches. */
  lookup(token: string): Principal | undefined {
    return this.byDigest.get(sha256Hex(token))
  }
}

/**
 * The token a request presents: `Authorization: Bearer TOKEN` (OpenAI clients), or `x-api-key`
 * (Anthropic-style clients and some gateways).
 */
export function presentedToken(
  authorization: string | undefined,
  apiKey: string | undefined,
): string | undefined {
  if (authorization !== undefined) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization)
    if (match?.[1]) return match[1]
  }
  const trimmed = apiKey?.trim()
  return trimmed ? trimmed : undefined
}
