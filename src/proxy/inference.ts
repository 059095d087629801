/**
 * The request path of velo serve for inference routes: parse and validate once, resolve the
 * model, cache lookup, admission, (load a managed model), forward to the upstream, stream the
 * answer back (bytes as they are when the client speaks the upstream's API, translated otherwise).
 */
import { errorMessage, VeloError } from '../core/errors.js'
import { bodyLimitFor } from './body-limits.js'
import {
  type CrossPlan,
  crossPlan,
  INFERENCE_ROUTES,
  type InferenceRoute,
  type ParsedRequest,
  parseRequest,
} from './bridge.js'
import type { CatalogEntry } from './catalog.js'
import { ClientClosed, type ProxyState, type RequestContext } from './context.js'
import { upstreamErrorMessage } from './errors.js'
import { parseJsonBody, readBody, writeChunk } from './http.js'
import type { ManagedLease } from './managed.js'
import type { AdmissionLease, CachedResponse, CacheLookup } from './pipeline-types.js'
import { mergeOllamaOptions } from './profiles.js'
import type { RetryPlan } from './repair/index.js'
import { callUpstream, type Endpoint, type UpstreamCall } from './resilience/call.js'
import { describePrompt } from './scheduler/auto-router.js'
import { pickByPrefix, prefixKeys } from './scheduler/prefix-affinity.js'
import { QueueRejection, resolvePriority } from './scheduler/scheduler.js'
import {
  createNDJSONSplitter,
  createSSEParser,
  mayHoldNull,
  streamErrorMessage,
  withoutNullFields,
} from './translate/index.js'
import type { Upstream } from './upstreams.js'

/** Usage as far as the upstream reported it. */
interface Usage {
  prompt: number | undefined
  completion: number | undefined
}

const BYPASS: CacheLookup = { key: undefined, outcome: 'bypass', response: undefined }
const TAIL_BYTES = 16 * 1024
const HEAD_BYTES = 4 * 1024
/** Past this, a plain response is not kept whole (for the cache); its usage still is read. */
const KEEP_LIMIT = 8 * 1024 * 1024
const EMPTY = Buffer.alloc(0)

function bump(map: Map<string, number>, key: string, by: number): void {
  const next = (map.get(key) ?? 0) + by
  if (next <= 0) map.delete(key)
  else map.set(key, next)
}

function sameModelName(requested: unknown, upstream: string): boolean {
  if (requested === upstream) return true
  const strip = (name: string): string => (name.endsWith(':latest') ? name.slice(0, -7) : name)
  return typeof requested === 'string' && strip(requested) === strip(upstream)
}

export function upstreamLabel(entry: CatalogEntry): string {
  return entry.kind === 'managed' ? `managed:${entry.id}` : (entry.upstream?.name ?? entry.kind)
}

/** The headers every proxied response carries. */
function veloHeaders(ctx: RequestContext, queueMs: number): Record<string, string> {
  return {
    'x-request-id': ctx.id,
    'x-velo-upstream': ctx.record.upstream ?? '',
    'x-velo-queue-ms': String(Math.round(queueMs)),
    'x-velo-cache': ctx.record.cache,
    ...(ctx.routedModel === undefined ? {} : { 'x-velo-routed-model': ctx.routedModel }),
  }
}

/**
 * The model a request for the `auto` alias goes to (scheduler.auto rules), or undefined when the
 * request names another model. A model that is really called `auto` wins when no rules are set.
 */
function routeAuto(state: ProxyState, body: Record<string, unknown>): string | undefined {
  const alias = state.config.scheduler.auto.alias
  if (body['model'] !== alias) return undefined
  if (state.autoRouter) return state.autoRouter.route(describePrompt(body)).model
  if (state.catalog.resolve(alias)) return undefined
  throw new VeloError(
    'VELO_MODEL_NOT_FOUND',
    `model "${alias}" is the auto-routing alias, but no scheduler.auto rules or default are configured`,
    {
      suggestion:
        'set scheduler.auto.rules (model, maxPromptChars, minPromptChars, tools) or scheduler.auto.default in velo.yaml',
    },
  )
}

/**
 * Keeps what velo reads from a response it passes through: the first and last bytes (usage is
 * at one end or the other), or everything when the response will be cached.
 */
class BodyTap {
  private head: Buffer[] = []
  private headBytes = 0
  private tail: Buffer[] = []
  private tailBytes = 0
  private all: Buffer[] | undefined
  private allBytes = 0

  constructor(keepAll: boolean) {
    this.all = keepAll ? [] : undefined
  }

  push(chunk: Buffer): void {
    if (this.all) {
      this.all.push(chunk)
      this.allBytes += chunk.length
      if (this.allBytes > KEEP_LIMIT) this.all = undefined
    }
    if (this.headBytes < HEAD_BYTES) {
      this.head.push(chunk)
      this.headBytes += chunk.length
      return
    }
    this.tail.push(chunk)
    this.tailBytes += chunk.length
    while (this.tail.length > 1 && this.tailBytes - (this.tail[0]?.length ?? 0) >= TAIL_BYTES) {
      this.tailBytes -= this.tail.shift()?.length ?? 0
    }
  }

  /** The whole body, when it was kept. */
  whole(): string | undefined {
    return this.all ? Buffer.concat(this.all).toString('utf8') : undefined
  }

  ends(): string {
    return Buffer.concat([...this.head, ...this.tail]).toString('utf8')
  }
}

/** `"key": 123` for each usage key, compiled once: usage is read from every answer. */
const NUMBER_PATTERNS = new Map<string, RegExp>()

function lastNumber(text: string, key: string): number | undefined {
  let pattern = NUMBER_PATTERNS.get(key)
  if (!pattern) {
    pattern = new RegExp(`"${key}"\\s*:\\s*(\\d+)`, 'g')
    NUMBER_PATTERNS.set(key, pattern)
  }
  let value: number | undefined
  for (const match of text.matchAll(pattern)) value = Number(match[1])
  return value
}

/** Token counts from the text of a response (OpenAI usage, llama-server timings or Ollama counts). */
export function usageFromText(text: string): Usage {
  const completion =
    lastNumber(text, 'completion_tokens') ?? lastNumber(text, 'predicted_n') ?? lastNumber(text, 'eval_count')
  let prompt = lastNumber(text, 'prompt_tokens') ?? lastNumber(text, 'prompt_eval_count')
  if (prompt === undefined) {
    const promptN = lastNumber(text, 'prompt_n')
    if (promptN !== undefined) prompt = promptN + (lastNumber(text, 'cache_n') ?? 0)
  }
  return { prompt, completion }
}

/** Token counts from one parsed upstream object (a response or a stream chunk). */
function observeUsage(value: unknown, usage: Usage): void {
  if (value === null || typeof value !== 'object') return
  const object = value as Record<string, unknown>
  const reported = object['usage'] as Record<string, unknown> | null | undefined
  if (reported && typeof reported === 'object') {
    if (typeof reported['prompt_tokens'] === 'number') usage.prompt = reported['prompt_tokens']
    if (typeof reported['completion_tokens'] === 'number') usage.completion = reported['completion_tokens']
    return
  }
  if (typeof object['eval_count'] === 'number') usage.completion = object['eval_count']
  if (typeof object['prompt_eval_count'] === 'number') usage.prompt = object['prompt_eval_count']
  const timings = object['timings'] as Record<string, unknown> | undefined
  if (timings && typeof timings === 'object' && usage.completion === undefined) {
    if (typeof timings['predicted_n'] === 'number') usage.completion = timings['predicted_n']
    if (typeof timings['prompt_n'] === 'number') {
      usage.prompt = timings['prompt_n'] + (typeof timings['cache_n'] === 'number' ? timings['cache_n'] : 0)
    }
  }
}

/** SSE events or NDJSON lines of a streamed response, for the cache to replay as they were sent. */
function frames(text: string, sse: boolean): string[] {
  const separator = sse ? '\n\n' : '\n'
  const parts = text.split(separator)
  const out: string[] = []
  for (const part of parts) if (part.trim() !== '') out.push(part + separator)
  return out
}

/** An error in the client's streaming format, for when the status line has already gone out. */
function streamErrorFrame(route: InferenceRoute, message: string): string {
  if (INFERENCE_ROUTES[route].api === 'openai') {
    return `data: ${JSON.stringify({ error: { message, type: 'upstream_error', code: 'VELO_UPSTREAM_ERROR' } })}\n\n`
  }
  return `${JSON.stringify({ error: message })}\n`
}

/** An upstream's error answer, in the client's family (the upstream's own status when it is a 4xx). */
function upstreamError(
  endpoint: Endpoint,
  entry: CatalogEntry,
  route: InferenceRoute,
  status: number,
  text: string,
) {
  const message = upstreamErrorMessage(text)
  let suggestion: string | undefined
  if (entry.kind === 'managed' && status === 501 && /embedding/i.test(message)) {
    suggestion = `add "--embeddings" to managed.models.${entry.id}.args (or managed.args) in velo.yaml`
  }
  return new VeloError(
    'VELO_UPSTREAM_ERROR',
    `upstream ${endpoint.label} answered ${status} to ${route}: ${message}`,
    {
      status: status >= 400 && status < 500 ? status : 502,
      suggestion,
    },
  )
}

/**
 * A managed model's leased llama-server, as the place its request goes; undefined for upstream
 * models, whose requests go to the best of `entry.upstreams` (callUpstream picks).
 */
function managedEndpoint(entry: CatalogEntry, lease: ManagedLease | undefined): Endpoint | undefined {
  if (lease) {
    return {
      pool: lease.pool,
      path: (route) => route,
      headers: {},
      label: `managed llama-server for ${entry.id} (${lease.url})`,
    }
  }
  if (entry.upstreams.length === 0) throw new VeloError('VELO_INTERNAL', `model ${entry.id} has no upstream`)
  return undefined
}

/** Ollama's way to load or unload a model: a chat without messages, a generate without a prompt. */
function isOllamaLoadRequest(parsed: ParsedRequest): boolean {
  const value = parsed.value as { messages?: unknown[] | null; prompt?: string | null }
  if (parsed.route === '/api/chat') return !value.messages || value.messages.length === 0
  if (parsed.route === '/api/generate') return !value.prompt
  return false
}

async function answerOllamaLoad(
  state: ProxyState,
  ctx: RequestContext,
  entry: CatalogEntry,
  parsed: ParsedRequest,
): Promise<void> {
  const keepAlive = (parsed.value as { keep_alive?: unknown }).keep_alive
  const unload = keepAlive === 0 || keepAlive === '0' || keepAlive === '0s'
  if (entry.kind === 'managed') {
    if (unload) await state.managed.unload(entry.id)
    else (await state.managed.acquire(entry.id, ctx.abort.signal)).release()
  }
  const base = {
    model: parsed.model,
    created_at: new Date().toISOString(),
    done: true,
    done_reason: unload ? 'unload' : 'load',
  }
  const body =
    parsed.route === '/api/chat'
      ? { ...base, message: { role: 'assistant', content: '' } }
      : { ...base, response: '' }
  const text = JSON.stringify(body)
  ctx.record.status = 200
  ctx.res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', ...veloHeaders(ctx, 0) })
  ctx.res.end(text)
}

async function replay(ctx: RequestContext, response: CachedResponse): Promise<void> {
  ctx.record.status = response.status
  ctx.res.writeHead(response.status, {
    'content-type': response.contentType,
    ...veloHeaders(ctx, 0),
    ...(response.similarity === undefined ? {} : { 'x-velo-similarity': response.similarity.toFixed(4) }),
  })
  if (response.chunks) {
    for (const chunk of response.chunks) await writeChunk(ctx.res, chunk)
    ctx.res.end()
  } else {
    ctx.res.end(response.body ?? '')
  }
}

/** The fairness key of a request: the name of the API key it carries, else the client's address. */
function clientOf(ctx: RequestContext): string {
  return ctx.principal?.name ?? ctx.client
}

/** Chat routes whose request declares tools: their answers go through tool-call repair. */
function repairsToolCalls(state: ProxyState, route: InferenceRoute, body: Record<string, unknown>): boolean {
  if (!state.repairer?.settings.repair || (route !== '/v1/chat/completions' && route !== '/api/chat')) {
    return false
  }
  return Array.isArray(body['tools']) && body['tools'].length > 0
}

/** Repair a complete chat answer in the client's format (`api`). */
function repairAnswer(
  state: ProxyState,
  api: 'openai' | 'ollama',
  answer: unknown,
  body: Record<string, unknown>,
  model: string,
  attemptsSoFar: number,
  enforced: boolean,
): { response: unknown; retry: RetryPlan | undefined } {
  const repairer = state.repairer
  if (!repairer) return { response: answer, retry: undefined }
  const repaired =
    api === 'openai'
      ? repairer.openAI(answer, body, model, attemptsSoFar, { enforced })
      : repairer.ollama(answer, body, model, attemptsSoFar, { enforced })
  return { response: repaired.response, retry: repaired.retry }
}

/** The request again with the retry plan's corrective turn, at temperature 0. */
function retryBody(
  api: 'openai' | 'ollama',
  sent: Record<string, unknown>,
  plan: Extract<RetryPlan, { retry: true }>,
): Record<string, unknown> {
  const messages = Array.isArray(sent['messages']) ? sent['messages'] : []
  const next: Record<string, unknown> = { ...sent, messages: [...messages, ...plan.messages] }
  if (api === 'openai') next['temperature'] = plan.overrides.temperature
  else {
    const options = typeof sent['options'] === 'object' && sent['options'] !== null ? sent['options'] : {}
    next['options'] = { ...options, temperature: plan.overrides.temperature }
  }
  return next
}

/** Handle one inference request end to end; throws VeloError (mapped to the client's family) or ClientClosed. */
export async function handleInference(
  state: ProxyState,
  ctx: RequestContext,
  route: InferenceRoute,
): Promise<void> {
  let raw = await readBody(ctx.req, bodyLimitFor(state.config, route))
  let body = parseJsonBody(raw)
  const asked = body['model']
  const routed = routeAuto(state, body)
  if (routed !== undefined) {
    // From here on the request is one for the chosen model: cache key, queue, upstream and answer.
    ctx.routedModel = routed
    body = { ...body, model: routed }
    raw = Buffer.from(JSON.stringify(body))
  }
  const parsed = parseRequest(route, body)
  ctx.record.model = parsed.model
  const entry = await state.resolveModel(parsed.model)
  // The key may use the model by the name it asked for (an alias, `auto`) or the one it resolved to.
  state.auth.checkModel(
    ctx.principal,
    typeof asked === 'string' ? asked : parsed.model,
    parsed.model,
    entry.id,
  )
  ctx.record.model = entry.id
  ctx.record.upstream = upstreamLabel(entry)
  const upstreamApi = entry.kind === 'ollama' ? 'ollama' : 'openai'
  if (upstreamApi !== 'ollama' && isOllamaLoadRequest(parsed)) {
    await answerOllamaLoad(state, ctx, entry, parsed)
    return
  }

  const lookup = state.cache ? await state.cache.lookup(route, body, ctx.req.headers) : BYPASS
  ctx.record.cache = lookup.outcome
  if (lookup.response) {
    await replay(ctx, lookup.response)
    return
  }

  const signal = ctx.abort.signal
  let admission: AdmissionLease | undefined
  let lease: ManagedLease | undefined
  bump(state.waiting, entry.id, 1)
  state.notify()
  try {
    const client = clientOf(ctx)
    admission = await state.scheduler.acquire({
      model: entry.id,
      priority: resolvePriority(ctx.req.headers['x-velo-priority'], client, state.config.scheduler),
      client,
      promptChars: raw.length,
      signal,
      prefixKeys: state.scheduling ? () => prefixKeys(body) : undefined,
    })
    if (entry.kind === 'managed') lease = await state.managed.acquire(entry.id, signal)
  } catch (error) {
    admission?.release()
    if (signal.aborted) throw new ClientClosed()
    // A request the queue gave up on waited all the same: x-velo-queue-ms says how long.
    if (error instanceof QueueRejection) ctx.record.queueMs = error.queueMs
    throw error
  } finally {
    bump(state.waiting, entry.id, -1)
  }
  bump(state.active, entry.id, 1)
  state.notify()
  try {
    ctx.record.queueMs = admission.queueMs + (lease?.waitedMs ?? 0)
    const managed = managedEndpoint(entry, lease)
    const preferred = entry.upstreams.length > 1 ? preferredUpstream(state, entry, body) : undefined
    const job: Forward = { entry, managed, preferred, parsed, route, raw, body, admission, lookup }
    if (upstreamApi === INFERENCE_ROUTES[route].api) await forwardSame(state, ctx, job)
    else await forwardCross(state, ctx, job)
  } finally {
    bump(state.active, entry.id, -1)
    admission.release()
    lease?.release()
    state.notify()
  }
}

/**
 * Prefix affinity across a model's upstreams: each conversation has a home upstream (rendezvous
 * hashing of its prefix key), whose prompt cache holds its earlier turns. Conversations spread over
 * the upstreams by hash, so one long system prompt shared by many does not pull them all to one.
 */
function preferredUpstream(
  state: ProxyState,
  entry: CatalogEntry,
  body: Record<string, unknown>,
): Upstream | undefined {
  if (!state.scheduling || !state.config.scheduler.prefixAffinity) return undefined
  const [key] = prefixKeys(body)
  if (key === undefined) return undefined
  const urls = entry.upstreams.map((upstream) => upstream.url)
  const home = pickByPrefix(key, urls)
  return entry.upstreams.find((upstream) => upstream.url === home)
}

interface Forward {
  entry: CatalogEntry
  /** A managed model's llama-server; undefined: one of `entry.upstreams`. */
  managed: Endpoint | undefined
  /** Of `entry.upstreams`, the one to try first (prefix affinity); undefined: the balance decides. */
  preferred: Upstream | undefined
  parsed: ParsedRequest
  route: InferenceRoute
  raw: Buffer
  body: Record<string, unknown>
  admission: AdmissionLease
  lookup: CacheLookup
}

function storeInCache(state: ProxyState, lookup: CacheLookup, response: CachedResponse): void {
  if (!state.cache || lookup.key === undefined || lookup.noStore) return
  state.cache.store(lookup, response).catch((error: unknown) => {
    state.logger.warn({ err: errorMessage(error) }, 'cache store failed')
  })
}

/** Same family: the upstream's error body is already what this client understands; pass it on. */
function passUpstreamError(
  state: ProxyState,
  ctx: RequestContext,
  call: UpstreamCall,
  contentType: string,
): void {
  const text = call.text
  ctx.record.status = call.statusCode
  state.stats.error(`${call.endpoint.label}: ${call.statusCode} ${upstreamErrorMessage(text)}`)
  ctx.res.writeHead(call.statusCode, { 'content-type': contentType, ...veloHeaders(ctx, ctx.record.queueMs) })
  ctx.res.end(text)
}

/** The client speaks the upstream's API: pass the bytes through, changing the body only when needed. */
/**
 * A stream already under way broke off upstream: end it with the API's error frame (502 in the
 * log), or, when the client is the one who left, say so.
 */
function endBrokenStream(
  state: ProxyState,
  ctx: RequestContext,
  route: InferenceRoute,
  call: UpstreamCall,
  error: unknown,
  where: 'mid-response' | 'mid-stream',
): void {
  if (ctx.abort.signal.aborted) throw new ClientClosed()
  const message = `upstream ${call.endpoint.label} failed ${where}: ${call.midStreamFailure(error)}`
  state.stats.error(message)
  ctx.record.status = 502
  ctx.res.end(streamErrorFrame(route, message))
}

/** A non-streamed answer, read whole upstream: one write carries the headers and the body with its length. */
function sendWhole(ctx: RequestContext, call: UpstreamCall, contentType: string, body: Buffer): void {
  ctx.record.status = call.statusCode
  ctx.res.writeHead(call.statusCode, {
    'content-type': contentType,
    'content-length': body.length,
    ...veloHeaders(ctx, ctx.record.queueMs),
  })
  ctx.res.end(body)
}

/** Token counts of a body read whole: its ends are where usage is, whatever its length. */
function usageFromBody(body: Buffer): Usage {
  if (body.length <= HEAD_BYTES + TAIL_BYTES) return usageFromText(body.toString('utf8'))
  const head = body.subarray(0, HEAD_BYTES).toString('utf8')
  return usageFromText(head + body.subarray(body.length - TAIL_BYTES).toString('utf8'))
}

async function forwardSame(state: ProxyState, ctx: RequestContext, job: Forward): Promise<void> {
  const { entry, body, route } = job
  let changed: Record<string, unknown> | undefined
  if (entry.kind !== 'managed' && !sameModelName(body['model'], entry.upstreamModel)) {
    changed = { ...body, model: entry.upstreamModel }
  }
  if (entry.kind === 'ollama') {
    const profile = await state.profileFor(entry)
    const options = profile ? mergeOllamaOptions(body['options'], profile.ollamaOptions) : undefined
    if (options) changed = { ...(changed ?? body), options }
  }
  // The scheduler hands out slots only for a llama-server (managed, or the one upstream of the model).
  if (job.admission.slot !== undefined) changed = { ...(changed ?? body), id_slot: job.admission.slot }
  if (entry.kind !== 'ollama' && mayHoldNull(job.raw)) {
    // llama-server rejects an explicit null where OpenAI clients send one to mean "not set". What
    // velo changed above (model, slot) adds none, so the client's bytes say whether there are any.
    const cleaned = withoutNullFields(changed ?? body)
    if (cleaned) changed = cleaned
  }
  if (repairsToolCalls(state, route, body)) {
    if (job.parsed.stream) await forwardRepairedStream(state, ctx, job, changed ?? body)
    else await forwardRepaired(state, ctx, job, changed ?? body)
    return
  }
  const payload = changed ? JSON.stringify(changed) : job.raw
  if (!job.parsed.stream) {
    // Read whole before the client gets a byte: a cut-off answer is retried or becomes a 502, never
    // a truncated 200, and it goes out in one write with its length.
    const call = await callUpstream(state, ctx, entry, job.managed, route, payload, 'whole', job.preferred)
    const contentType = String(call.headers['content-type'] ?? 'application/json')
    if (call.statusCode >= 400) {
      passUpstreamError(state, ctx, call, contentType)
      return
    }
    const body = call.bytes ?? EMPTY
    sendWhole(ctx, call, contentType, body)
    const usage = usageFromBody(body)
    ctx.record.promptTokens = usage.prompt
    ctx.record.completionTokens = INFERENCE_ROUTES[route].generates ? usage.completion : undefined
    if (
      call.statusCode === 200 &&
      job.lookup.key !== undefined &&
      !job.lookup.noStore &&
      body.length <= KEEP_LIMIT
    ) {
      storeInCache(state, job.lookup, {
        status: 200,
        contentType,
        chunks: undefined,
        body: body.toString('utf8'),
      })
    }
    return
  }
  const call = await callUpstream(state, ctx, entry, job.managed, route, payload, 'stream', job.preferred)
  const res = ctx.res
  const contentType = String(call.headers['content-type'] ?? 'application/json')
  const tap = new BodyTap(job.lookup.key !== undefined && !job.lookup.noStore)
  try {
    if (call.statusCode >= 400) {
      passUpstreamError(state, ctx, call, contentType)
      return
    }
    res.writeHead(call.statusCode, {
      'content-type': contentType,
      'cache-control': 'no-cache',
      'x-accel-buffering': 'no',
      ...veloHeaders(ctx, ctx.record.queueMs),
    })
    ctx.record.status = call.statusCode
    try {
      if (call.first !== undefined && call.rest) {
        if (INFERENCE_ROUTES[route].generates) ctx.record.ttftMs = performance.now() - ctx.started
        tap.push(call.first)
        const wait = writeChunk(res, call.first)
        if (wait) await wait
        for await (const chunk of call.rest) {
          tap.push(chunk)
          const wait = writeChunk(res, chunk)
          if (wait) await wait
        }
      }
    } catch (error) {
      endBrokenStream(state, ctx, route, call, error, 'mid-response')
      return
    }
    res.end()
  } finally {
    call.end()
  }
  const usage = usageFromText(tap.ends())
  ctx.record.promptTokens = usage.prompt
  ctx.record.completionTokens = INFERENCE_ROUTES[route].generates ? usage.completion : undefined
  const whole = tap.whole()
  if (whole !== undefined && call.statusCode === 200) {
    storeInCache(state, job.lookup, {
      status: 200,
      contentType,
      chunks: frames(whole, contentType.includes('text/event-stream')),
      body: undefined,
    })
  }
}

/**
 * A non-streamed chat with tools, same API: the whole answer is read, its tool calls repaired (and
 * the request retried with a corrective turn while they stay invalid), then sent and cached. Models
 * in `toolCalls.enforce.models` get the engine's JSON-schema constraint merged into the request.
 */
async function forwardRepaired(
  state: ProxyState,
  ctx: RequestContext,
  job: Forward,
  upstreamBody: Record<string, unknown>,
): Promise<void> {
  const { entry, body, route } = job
  const api = INFERENCE_ROUTES[route].api
  const enforcement = state.repairer?.enforcement(api, body, entry.id)
  let sent: Record<string, unknown> = enforcement ? { ...upstreamBody, ...enforcement } : upstreamBody
  for (let attempt = 0; ; attempt++) {
    const call = await callUpstream(
      state,
      ctx,
      entry,
      job.managed,
      route,
      JSON.stringify(sent),
      'whole',
      job.preferred,
    )
    const text = call.text
    const label = call.endpoint.label
    const contentType = String(call.headers['content-type'] ?? 'application/json')
    if (call.statusCode >= 400) {
      ctx.record.status = call.statusCode
      state.stats.error(`${label}: ${call.statusCode} ${upstreamErrorMessage(text)}`)
      ctx.res.writeHead(call.statusCode, {
        'content-type': contentType,
        ...veloHeaders(ctx, ctx.record.queueMs),
      })
      ctx.res.end(text)
      return
    }
    let answer: unknown
    try {
      answer = JSON.parse(text)
    } catch (error) {
      throw new VeloError(
        'VELO_UPSTREAM_ERROR',
        `upstream ${label} sent a body that is not JSON: ${errorMessage(error)}`,
      )
    }
    const repaired = repairAnswer(state, api, answer, body, entry.id, attempt, enforcement !== undefined)
    if (repaired.retry?.retry) {
      state.logger.info({ id: ctx.id, model: entry.id, attempt: repaired.retry.attempt }, 'tool call retry')
      sent = retryBody(api, sent, repaired.retry)
      continue
    }
    if (repaired.retry) throw repaired.retry.error
    const usage: Usage = { prompt: undefined, completion: undefined }
    observeUsage(answer, usage)
    ctx.record.promptTokens = usage.prompt
    ctx.record.completionTokens = usage.completion
    const out = JSON.stringify(repaired.response)
    ctx.record.status = 200
    ctx.res.writeHead(200, {
      'content-type': contentType,
      'content-length': String(Buffer.byteLength(out)),
      ...veloHeaders(ctx, ctx.record.queueMs),
    })
    ctx.res.end(out)
    storeInCache(state, job.lookup, { status: 200, contentType, chunks: undefined, body: out })
    return
  }
}

/**
 * A streamed chat with tools, same API: tool-call deltas are assembled, repaired and sent again in
 * valid OpenAI (SSE) or Ollama (NDJSON) form when each choice finishes; text passes as it comes.
 */
async function forwardRepairedStream(
  state: ProxyState,
  ctx: RequestContext,
  job: Forward,
  upstreamBody: Record<string, unknown>,
): Promise<void> {
  const { entry, body, route } = job
  const api = INFERENCE_ROUTES[route].api
  const enforcement = state.repairer?.enforcement(api, body, entry.id)
  const sent = enforcement ? { ...upstreamBody, ...enforcement } : upstreamBody
  const streamOptions = { enforced: enforcement !== undefined }
  const assembler =
    api === 'openai'
      ? state.repairer?.openAIStream(body, entry.id, streamOptions)
      : state.repairer?.ollamaStream(body, entry.id, streamOptions)
  // repairsToolCalls sent the request here because a repairer exists, so it has an assembler.
  if (!assembler) throw new VeloError('VELO_INTERNAL', 'tool-call repair is on but has no stream assembler')
  const call = await callUpstream(
    state,
    ctx,
    entry,
    job.managed,
    route,
    JSON.stringify(sent),
    'stream',
    job.preferred,
  )
  const res = ctx.res
  const contentType = String(call.headers['content-type'] ?? 'application/json')
  try {
    if (call.statusCode >= 400) {
      passUpstreamError(state, ctx, call, contentType)
      return
    }
    res.writeHead(200, {
      'content-type': contentType,
      'cache-control': 'no-cache',
      'x-accel-buffering': 'no',
      ...veloHeaders(ctx, ctx.record.queueMs),
    })
    ctx.record.status = 200
    const usage: Usage = { prompt: undefined, completion: undefined }
    const frame = (event: unknown): string =>
      api === 'openai' ? `data: ${JSON.stringify(event)}\n\n` : `${JSON.stringify(event)}\n`
    const kept: string[] | undefined = job.lookup.key !== undefined && !job.lookup.noStore ? [] : undefined
    let out = ''
    let ended = false
    const onObject = (text: string): void => {
      let value: unknown
      try {
        value = JSON.parse(text)
      } catch {
        // Not an event velo understands: it goes on as it came.
        out += api === 'openai' ? `data: ${text}\n\n` : `${text}\n`
        return
      }
      observeUsage(value, usage)
      for (const event of assembler.push(value)) out += frame(event)
    }
    const finish = (): void => {
      if (ended) return
      ended = true
      for (const event of assembler.end()) out += frame(event)
    }
    const parser =
      api === 'openai'
        ? createSSEParser((data) => {
            if (data !== '[DONE]') onObject(data)
            else {
              finish()
              out += 'data: [DONE]\n\n'
            }
          })
        : createNDJSONSplitter(onObject)
    const flush = async (): Promise<void> => {
      if (!out) return
      if (ctx.record.ttftMs === undefined) ctx.record.ttftMs = performance.now() - ctx.started
      const chunk = out
      out = ''
      kept?.push(...frames(chunk, api === 'openai'))
      const wait = writeChunk(res, chunk)
      if (wait) await wait
    }
    try {
      if (call.first !== undefined && call.rest) {
        parser.feed(call.first)
        await flush()
        for await (const chunk of call.rest) {
          parser.feed(chunk)
          await flush()
        }
      }
      parser.end()
      finish()
      await flush()
    } catch (error) {
      endBrokenStream(state, ctx, route, call, error, 'mid-stream')
      return
    }
    res.end()
    ctx.record.promptTokens = usage.prompt
    ctx.record.completionTokens = usage.completion
    if (kept) storeInCache(state, job.lookup, { status: 200, contentType, chunks: kept, body: undefined })
  } finally {
    call.end()
  }
}

/** The client speaks the other API: translate the request, and the answer as it streams back. */
async function forwardCross(state: ProxyState, ctx: RequestContext, job: Forward): Promise<void> {
  const { entry, parsed, route } = job
  const openaiPrefix = route === '/v1/chat/completions' ? 'chatcmpl-' : 'cmpl-'
  const plan: CrossPlan = crossPlan(parsed, entry.upstreamModel, {
    model: parsed.model,
    id: `${openaiPrefix}${ctx.id}`,
    created: Math.floor(ctx.startedEpoch / 1000),
    includeUsage:
      (parsed.value as { stream_options?: { include_usage?: boolean | null } | null }).stream_options
        ?.include_usage === true,
    startedAt: ctx.started,
  })
  if (entry.kind === 'ollama') {
    const profile = await state.profileFor(entry)
    const options = profile ? mergeOllamaOptions(plan.body['options'], profile.ollamaOptions) : undefined
    if (options) plan.body['options'] = options
  }
  if (job.admission.slot !== undefined) plan.body['id_slot'] = job.admission.slot
  // Tool calls of a non-streamed chat are repaired in the client's format after translation (no
  // corrective retries on this path: the retry turn would have to be translated back).
  let repairs: { enforced: boolean } | undefined
  if (repairsToolCalls(state, route, job.body) && !plan.stream) {
    const enforcement = state.repairer?.enforcement(
      entry.kind === 'ollama' ? 'ollama' : 'openai',
      job.body,
      entry.id,
    )
    if (enforcement) Object.assign(plan.body, enforcement)
    repairs = { enforced: enforcement !== undefined }
  }
  const call = await callUpstream(
    state,
    ctx,
    entry,
    job.managed,
    plan.upstreamRoute,
    JSON.stringify(plan.body),
    plan.stream ? 'stream' : 'whole',
    job.preferred,
  )
  try {
    await answerCross(state, ctx, job, plan, repairs, call)
  } finally {
    call.end()
  }
}

/** The translated answer of forwardCross, plain or streamed. */
async function answerCross(
  state: ProxyState,
  ctx: RequestContext,
  job: Forward,
  plan: CrossPlan,
  /** Repair the tool calls of the translated answer (read as enforced JSON when `enforced`). */
  repairs: { enforced: boolean } | undefined,
  call: UpstreamCall,
): Promise<void> {
  const { entry, route } = job
  const res = ctx.res
  const label = call.endpoint.label
  if (call.statusCode >= 400) {
    const error = upstreamError(call.endpoint, entry, route, call.statusCode, call.text)
    state.stats.error(error.message)
    throw error
  }
  const usage: Usage = { prompt: undefined, completion: undefined }
  const generates = INFERENCE_ROUTES[route].generates
  const keep = job.lookup.key !== undefined && !job.lookup.noStore

  if (!plan.stream) {
    let upstream: unknown
    try {
      upstream = JSON.parse(call.text)
    } catch (error) {
      throw new VeloError(
        'VELO_UPSTREAM_ERROR',
        `upstream ${label} sent a body that is not JSON: ${errorMessage(error)}`,
      )
    }
    observeUsage(upstream, usage)
    let answer = plan.respond(upstream)
    if (repairs) {
      const repaired = repairAnswer(
        state,
        INFERENCE_ROUTES[route].api,
        answer,
        job.body,
        entry.id,
        state.repairer?.settings.retries ?? 0,
        repairs.enforced,
      )
      if (repaired.retry && !repaired.retry.retry) throw repaired.retry.error
      answer = repaired.response
    }
    const text = JSON.stringify(answer)
    ctx.record.status = 200
    ctx.record.promptTokens = usage.prompt
    ctx.record.completionTokens = generates ? usage.completion : undefined
    res.writeHead(200, {
      'content-type': plan.contentType,
      'content-length': String(Buffer.byteLength(text)),
      ...veloHeaders(ctx, ctx.record.queueMs),
    })
    res.end(text)
    if (keep)
      storeInCache(state, job.lookup, {
        status: 200,
        contentType: plan.contentType,
        chunks: undefined,
        body: text,
      })
    return
  }

  res.writeHead(200, {
    'content-type': plan.contentType,
    'cache-control': 'no-cache',
    'x-accel-buffering': 'no',
    ...veloHeaders(ctx, ctx.record.queueMs),
  })
  ctx.record.status = 200
  const translator = plan.streamTranslator()
  const sent: string[] | undefined = keep ? [] : undefined
  let out = ''
  let failure: string | undefined
  const onObject = (text: string): void => {
    if (failure !== undefined) return
    let value: unknown
    try {
      value = JSON.parse(text)
    } catch {
      failure = `upstream ${label} sent a stream chunk that is not JSON: ${text.slice(0, 80)}`
      return
    }
    if (value === null || typeof value !== 'object') return
    const upstreamError = streamErrorMessage(value)
    if (upstreamError !== undefined) {
      failure = `upstream ${label} failed mid-stream: ${upstreamError}`
      return
    }
    observeUsage(value, usage)
    out += translator.push(value)
  }
  const parser =
    plan.framing === 'sse'
      ? createSSEParser((data) => {
          if (data !== '[DONE]') onObject(data)
        })
      : createNDJSONSplitter(onObject)
  const flush = async (): Promise<void> => {
    if (!out) return
    if (ctx.record.ttftMs === undefined) ctx.record.ttftMs = performance.now() - ctx.started
    sent?.push(out)
    const chunk = out
    out = ''
    const wait = writeChunk(res, chunk)
    if (wait) await wait
  }
  try {
    if (call.first !== undefined && call.rest) {
      parser.feed(call.first)
      await flush()
      if (failure === undefined) {
        for await (const chunk of call.rest) {
          parser.feed(chunk)
          await flush()
          if (failure !== undefined) break
        }
      }
    }
    if (failure === undefined) {
      parser.end()
      out += translator.end()
      await flush()
    }
  } catch (error) {
    if (ctx.abort.signal.aborted) throw new ClientClosed()
    failure = `upstream ${label} failed mid-stream: ${call.midStreamFailure(error)}`
  }
  if (failure !== undefined) {
    state.stats.error(failure)
    ctx.record.status = 502
    res.end(streamErrorFrame(route, failure))
    return
  }
  res.end()
  ctx.record.promptTokens = usage.prompt
  ctx.record.completionTokens = generates ? usage.completion : undefined
  if (sent)
    storeInCache(state, job.lookup, {
      status: 200,
      contentType: plan.contentType,
      chunks: sent,
      body: undefined,
    })
}
