import { createHash } from 'node:crypto'

/**
 * What makes two requests "the same" for the cache: a canonical form of the parsed body, so that key
 * order, `null` versus an absent field, and fields that do not change the output (`user`, `metadata`,
 * `keep_alive`, llama-server's `id_slot`) make no difference, while everything that can change the
 * output (model, messages, sampling parameters, tools, response format, stream options) does.
 * Unknown fields count: a field velo does not know might change the output, and a miss is cheaper
 * than a wrong answer.
 */

export type CacheRouteKind = 'chat' | 'completion' | 'embedding'

/** The routes whose responses the cache may store, by what they do. */
export const CACHEABLE_ROUTES: Readonly<Record<string, CacheRouteKind>> = {
  '/v1/chat/completions': 'chat',
  '/v1/completions': 'completion',
  '/v1/embeddings': 'embedding',
  '/api/chat': 'chat',
  '/api/generate': 'completion',
  '/api/embed': 'embedding',
  '/api/embeddings': 'embedding',
}

/** Fields that do not change what the model answers. */
const IGNORED_FIELDS = new Set([
  'user',
  'metadata',
  'keep_alive',
  'store',
  'id_slot',
  'cache_prompt',
  'service_tier',
])

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue }

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** JSON with sorted keys, without undefined or null properties; arrays keep their order. */
export function canonicalJson(value: unknown): string {
  if (value === null || value === undefined) return 'null'
  if (Array.isArray(value)) return `[${value.map((item) => canonicalJson(item)).join(',')}]`
  if (isRecord(value)) {
    const keys = Object.keys(value)
      .filter((key) => value[key] !== undefined && value[key] !== null)
      .sort()
    return `{${keys.map((key) => `${JSON.stringify(key)}:${canonicalJson(value[key])}`).join(',')}}`
  }
  if (typeof value === 'number' && !Number.isFinite(value)) return 'null'
  return JSON.stringify(value) ?? 'null'
}

/** Content given as text parts only is the same prompt as the joined string. */
function normalizeContent(content: unknown): unknown {
  if (!Array.isArray(content)) return content
  const texts: string[] = []
  for (const part of content) {
    if (isRecord(part) && part['type'] === 'text' && typeof part['text'] === 'string')
      texts.push(part['text'])
    else return content
  }
  return texts.join('')
}

function normalizeBody(route: string, body: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(body)) {
    if (IGNORED_FIELDS.has(key)) continue
    if (key === 'messages' && Array.isArray(value)) {
      out[key] = value.map((message) =>
        isRecord(message) ? { ...message, content: normalizeContent(message['content']) } : message,
      )
    } else out[key] = value
  }
  // Streaming is off by default on /v1 and on by default on /api: an absent flag means the default.
  if (out['stream'] === undefined) out['stream'] = route.startsWith('/api/')
  return out
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('base64url')

/** The exact-cache key of a request: a hash of the route and the canonical body. */
export function cacheKey(route: string, body: Record<string, unknown>): string {
  return sha256(`v1\n${route}\n${canonicalJson(normalizeBody(route, body))}`)
}

function numberAt(body: Record<string, unknown>, key: string): number | undefined {
  const top = body[key]
  if (typeof top === 'number') return top
  const options = body['options']
  if (isRecord(options) && typeof options[key] === 'number') return options[key]
  return undefined
}

/**
 * Whether the same request gives the same answer: embeddings always; generation with temperature 0
 * or a fixed seed (OpenAI top level or Ollama `options`). llama.cpp treats seed -1 as random.
 */
export function isDeterministic(kind: CacheRouteKind, body: Record<string, unknown>): boolean {
  if (kind === 'embedding') return true
  if (numberAt(body, 'temperature') === 0) return true
  const seed = numberAt(body, 'seed')
  return seed !== undefined && Number.isInteger(seed) && seed >= 0
}

export interface CacheControl {
  /** Do not answer from the cache (the response may still be stored). */
  noCache: boolean
  /** Do not store the response. */
  noStore: boolean
}

/** `Cache-Control: no-cache` (or `max-age=0`, or `Pragma: no-cache`) and `no-store`, from request headers. */
export function parseCacheControl(headers: Record<string, string | string[] | undefined>): CacheControl {
  const flat = (value: string | string[] | undefined) =>
    (Array.isArray(value) ? value.join(',') : (value ?? '')).toLowerCase()
  const directives = new Map<string, string | undefined>()
  for (const part of flat(headers['cache-control']).split(',')) {
    const [name, argument] = part.trim().split('=')
    if (name) directives.set(name, argument?.trim())
  }
  return {
    noCache:
      directives.has('no-cache') ||
      directives.get('max-age') === '0' ||
      flat(headers['pragma']).includes('no-cache'),
    noStore: directives.has('no-store'),
  }
}

function textOf(content: unknown): string | undefined {
  const normalized = normalizeContent(content)
  return typeof normalized === 'string' ? normalized : undefined
}

export interface SemanticParts {
  /** Everything but the question: a semantic hit is only allowed inside one namespace. */
  namespace: string
  /** The text to embed: the last user turn (chat) or the prompt (completion). */
  text: string
}

/**
 * Split a request into its namespace and the text to embed. The namespace holds the route, model,
 * stream flag, system prompt, tools, tool choice, response format and every earlier turn, so two
 * requests can only be paraphrases of each other when all of that is equal; undefined when the
 * request cannot be cached semantically (embeddings, no user turn last, non-text content).
 */
export function semanticParts(route: string, body: Record<string, unknown>): SemanticParts | undefined {
  const kind = CACHEABLE_ROUTES[route]
  if (kind === undefined || kind === 'embedding') return undefined
  const context: Record<string, unknown> = {
    route,
    model: body['model'],
    stream: body['stream'] ?? route.startsWith('/api/'),
    streamOptions: body['stream_options'],
    tools: body['tools'],
    toolChoice: body['tool_choice'],
    responseFormat: body['response_format'],
    format: body['format'],
    system: body['system'],
    template: body['template'],
    raw: body['raw'],
    think: body['think'],
  }
  let text: string | undefined
  if (kind === 'chat') {
    const messages = body['messages']
    if (!Array.isArray(messages) || messages.length === 0) return undefined
    const last = messages[messages.length - 1]
    if (!isRecord(last) || last['role'] !== 'user' || last['images'] !== undefined) return undefined
    text = textOf(last['content'])
    context['history'] = messages
      .slice(0, -1)
      .map((message) =>
        isRecord(message) ? { ...message, content: normalizeContent(message['content']) } : message,
      )
  } else {
    text = typeof body['prompt'] === 'string' ? body['prompt'] : undefined
    if (body['suffix'] !== undefined) context['suffix'] = body['suffix']
  }
  if (text === undefined || text.trim().length === 0) return undefined
  return { namespace: sha256(`ns1\n${canonicalJson(context)}`), text }
}
