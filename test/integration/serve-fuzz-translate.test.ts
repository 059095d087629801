/**
 * Property-based fuzzing of velo's request path without sockets, so it takes thousands of runs:
 * body bytes through the one parse, validation and translation to the other API (the path to an
 * Ollama upstream, which the socket fuzzing in serve-fuzz.test.ts does not have), and stream
 * translators fed whatever an upstream might send. Properties: the only error a client's body
 * causes is a VeloError 400 naming the field; what velo sends upstream is a valid request of the
 * upstream's API; a stream translator never throws and writes only well-formed frames.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { VeloError } from '../../src/core/errors.js'
import {
  crossPlan,
  INFERENCE_ROUTES,
  type InferenceRoute,
  type ParsedRequest,
  parseRequest,
} from '../../src/proxy/bridge.js'
import { parseJsonBody } from '../../src/proxy/http.js'
import {
  createOllamaToOpenAIStream,
  createOpenAIToOllamaStream,
  parseOllamaChatRequest,
  parseOllamaEmbedRequest,
  parseOllamaGenerateRequest,
  parseOpenAIChatRequest,
  parseOpenAICompletionRequest,
  parseOpenAIEmbeddingRequest,
  type StreamTranslator,
  type TranslateContext,
  withoutNullFields,
} from '../../src/proxy/translate/index.js'
import { bodyFor, deep, raw, serialize, TEMPLATES } from './serve-fuzz-arbitraries.js'

const RUNS = Number(process.env['VELO_FUZZ_RUNS'] ?? 25) * 20
const SEED = process.env['VELO_FUZZ_SEED'] === undefined ? undefined : Number(process.env['VELO_FUZZ_SEED'])

/** How an upstream of the other API validates what velo sends it, by upstream route. */
const UPSTREAM_PARSERS: Record<string, (body: unknown) => unknown> = {
  '/api/chat': parseOllamaChatRequest,
  '/api/generate': parseOllamaGenerateRequest,
  '/api/embed': parseOllamaEmbedRequest,
  '/v1/chat/completions': parseOpenAIChatRequest,
  '/v1/completions': parseOpenAICompletionRequest,
  '/v1/embeddings': parseOpenAIEmbeddingRequest,
}

const ctx: TranslateContext = {
  model: 'client-model',
  id: 'chatcmpl-fuzz',
  created: 1,
  includeUsage: true,
  startedAt: 0,
}

/** Ollama's load request (no messages, no prompt) is answered without translation (inference.ts). */
function isLoadRequest(parsed: ParsedRequest): boolean {
  const value = parsed.value as { messages?: unknown[] | null; prompt?: string | null }
  if (parsed.route === '/api/chat') return !value.messages || value.messages.length === 0
  if (parsed.route === '/api/generate') return !value.prompt
  return false
}

function expectClientError(error: unknown, body: string): void {
  expect(error, body).toBeInstanceOf(VeloError)
  const veloError = error as VeloError
  expect(veloError.status, `${body}: ${veloError.message}`).toBe(400)
  expect(veloError.message, body).toMatch(/^[^\s:]+: /)
}

describe('velo request path fuzzing: parse, validate, translate (fast-check)', () => {
  for (const route of Object.keys(INFERENCE_ROUTES) as InferenceRoute[]) {
    it(`${route}: a body is a 400 naming the field, or becomes a valid request of the other API`, () => {
      fc.assert(
        fc.property(bodyFor(route), (body) => {
          let plan: ReturnType<typeof crossPlan>
          try {
            const parsed = parseRequest(route, parseJsonBody(body.bytes))
            if (isLoadRequest(parsed)) return
            plan = crossPlan(parsed, 'upstream-model', ctx)
          } catch (error) {
            expectClientError(error, String(body))
            return
          }
          const parse = UPSTREAM_PARSERS[plan.upstreamRoute]
          expect(parse, plan.upstreamRoute).toBeDefined()
          // What goes upstream serializes and is a valid request there: no 400 or 500 from it.
          const sent: unknown = JSON.parse(JSON.stringify(plan.body))
          expect(() => parse?.(sent), `${body} -> ${JSON.stringify(sent).slice(0, 600)}`).not.toThrow()
        }),
        {
          numRuns: RUNS,
          seed: SEED,
          // What JSON.parse takes but later steps cannot: deep nesting where translation copies it
          // (tool schemas, format), numbers beyond a double, lone surrogates.
          examples: [
            [
              serialize({
                ...TEMPLATES[route],
                tools: [{ type: 'function', function: { name: 'f', parameters: { a: deep(20_000) } } }],
              }),
            ],
            [serialize({ ...TEMPLATES[route], format: { a: deep(20_000) } })],
            [serialize({ ...TEMPLATES[route], temperature: raw('1e400') })],
            [serialize({ ...TEMPLATES[route], model: raw('"m\\udc00"') })],
          ],
        },
      )
    })
  }

  /**
   * Nulls left in the request's own fields (top level, messages, their parts and tool calls, tools,
   * stream_options), where null means "not set"; `content` and tool call `arguments` may stay null,
   * and what is inside other values (schemas, vendor fields) is the client's as it is.
   */
  function strayNulls(body: Record<string, unknown>): string[] {
    const found: string[] = []
    const check = (value: unknown, path: string, keep: string[] = []): void => {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) return
      for (const [key, item] of Object.entries(value)) {
        if (item === null && !keep.includes(key)) found.push(`${path}${key}`)
      }
    }
    const list = (value: unknown): unknown[] => (Array.isArray(value) ? value : [])
    check(body, '')
    check(body['stream_options'], 'stream_options.')
    list(body['messages']).forEach((message, i) => {
      check(message, `messages[${i}].`, ['content'])
      const fields = (message ?? {}) as Record<string, unknown>
      list(fields['content']).forEach((part, j) => {
        check(part, `messages[${i}].content[${j}].`)
        check(
          (part as Record<string, unknown> | null)?.['image_url'],
          `messages[${i}].content[${j}].image_url.`,
        )
      })
      list(fields['tool_calls']).forEach((call, j) => {
        check(call, `messages[${i}].tool_calls[${j}].`)
        check(
          (call as Record<string, unknown> | null)?.['function'],
          `messages[${i}].tool_calls[${j}].function.`,
          ['arguments'],
        )
      })
    })
    list(body['tools']).forEach((tool, i) => {
      check(tool, `tools[${i}].`)
      check((tool as Record<string, unknown> | null)?.['function'], `tools[${i}].function.`)
    })
    return found
  }

  for (const route of ['/v1/chat/completions', '/v1/completions', '/v1/embeddings'] as const) {
    it(`${route}: what goes to an OpenAI-compatible upstream as the client wrote it loses its "not set" nulls`, () => {
      const withNulls = fc.oneof(
        bodyFor(route),
        fc.constant(serialize({ ...TEMPLATES[route], user: null, encoding_format: null })),
      )
      fc.assert(
        fc.property(withNulls, (body) => {
          let value: Record<string, unknown>
          try {
            value = parseRequest(route, parseJsonBody(body.bytes)).value as Record<string, unknown>
          } catch {
            return
          }
          const cleaned = withoutNullFields(value)
          expect(strayNulls(cleaned ?? value), String(body)).toEqual([])
          // Undefined when nothing changed (the client's bytes go as they are); idempotent.
          if (cleaned) {
            expect(cleaned).not.toEqual(value)
            expect(withoutNullFields(cleaned)).toBeUndefined()
          }
        }),
        {
          numRuns: RUNS,
          seed: SEED,
          examples: [
            [
              serialize({
                model: 'm',
                messages: [
                  { role: 'user', content: [{ type: 'text', text: 'x' }], name: null, tool_call_id: null },
                  {
                    role: 'assistant',
                    content: null,
                    reasoning_content: null,
                    tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: null } }],
                  },
                ],
                tools: [
                  {
                    type: 'function',
                    function: { name: 'f', description: null, parameters: { default: null } },
                  },
                ],
                stream_options: { include_usage: null },
              }),
            ],
          ],
        },
      )
    })
  }

  const translators: [string, () => StreamTranslator, 'sse' | 'ndjson'][] = [
    ['Ollama chat lines to OpenAI SSE', () => createOllamaToOpenAIStream('chat', ctx), 'sse'],
    ['Ollama generate lines to OpenAI SSE', () => createOllamaToOpenAIStream('completion', ctx), 'sse'],
    ['OpenAI chat chunks to Ollama NDJSON', () => createOpenAIToOllamaStream('chat', ctx), 'ndjson'],
    [
      'OpenAI completion chunks to Ollama NDJSON',
      () => createOpenAIToOllamaStream('generate', ctx),
      'ndjson',
    ],
  ]
  const chunk = fc.oneof(
    fc.object({ maxDepth: 3 }),
    fc.record(
      {
        model: fc.string(),
        message: fc.record(
          { role: fc.string(), content: fc.oneof(fc.string(), fc.constant(null)) },
          { requiredKeys: [] },
        ),
        response: fc.string(),
        done: fc.boolean(),
        done_reason: fc.constantFrom('stop', 'length', 'load', null, 5),
        eval_count: fc.oneof(fc.nat(), fc.constant(-1), fc.string()),
        choices: fc.array(
          fc.record(
            {
              index: fc.oneof(fc.nat(3), fc.string()),
              delta: fc.record(
                {
                  content: fc.oneof(fc.string(), fc.constant(null)),
                  tool_calls: fc.array(fc.object({ maxDepth: 2 }), { maxLength: 2 }),
                },
                { requiredKeys: [] },
              ),
              text: fc.string(),
              finish_reason: fc.constantFrom('stop', 'length', 'tool_calls', null, 7),
            },
            { requiredKeys: [] },
          ),
          { maxLength: 2 },
        ),
        usage: fc.oneof(fc.object({ maxDepth: 1 }), fc.constant(null)),
        timings: fc.object({ maxDepth: 1 }),
      },
      { requiredKeys: [] },
    ),
  )

  for (const [name, make, framing] of translators) {
    it(`${name}: any upstream chunks translate without throwing, into well-formed frames`, () => {
      fc.assert(
        fc.property(fc.array(chunk, { maxLength: 6 }), (chunks) => {
          const translator = make()
          let out = ''
          for (const one of chunks) out += translator.push(one)
          out += translator.end()
          const frames = framing === 'sse' ? out.split('\n\n') : out.split('\n')
          for (const frame of frames) {
            if (frame === '') continue
            const data = framing === 'sse' ? frame.replace(/^data: /, '') : frame
            if (data === '[DONE]') continue
            expect(() => JSON.parse(data), frame).not.toThrow()
          }
        }),
        { numRuns: RUNS, seed: SEED },
      )
    })
  }
})
