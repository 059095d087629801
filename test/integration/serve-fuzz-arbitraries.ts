/**
 * fast-check arbitraries for velo's request bodies (serve-fuzz*.test.ts): a valid template per
 * route, mutated at any of its paths (delete, wrong type, edge number, odd text, raw fragments a
 * JS value cannot hold), plus arbitrary bytes and JSON.
 */
import { isUtf8 } from 'node:buffer'
import fc from 'fast-check'
import type { InferenceRoute } from '../../src/proxy/bridge.js'

export const MODEL = 'velo-tiny'
/** An alias makes velo rewrite the body (model name) instead of passing the bytes through. */
export const ALIAS = 'fuzz-alias'

/** A JSON fragment written as it is (what a JS value cannot hold: 1e400, "\ud800", deep nesting). */
export class Raw {
  constructor(readonly bytes: Buffer) {}
}

export const raw = (text: string): Raw => new Raw(Buffer.from(text, 'latin1'))

/** A request body; printed as text in fast-check's counterexamples (and in failure messages). */
export class Body {
  constructor(readonly bytes: Buffer) {}

  [fc.toStringMethod](): string {
    return `Body(${this.toString()})`
  }

  toString(): string {
    const text = isUtf8(this.bytes) ? this.bytes.toString('utf8') : `latin1:${this.bytes.toString('latin1')}`
    return JSON.stringify(text.length > 600 ? `${text.slice(0, 600)}... (${this.bytes.length} bytes)` : text)
  }
}

/** JSON.stringify that lets Raw fragments through byte for byte (invalid UTF-8 included). */
export function serialize(value: unknown): Body {
  const parts: Buffer[] = []
  const write = (item: unknown): void => {
    if (item instanceof Raw) parts.push(item.bytes)
    else if (Array.isArray(item)) {
      parts.push(Buffer.from('['))
      item.forEach((element, index) => {
        if (index > 0) parts.push(Buffer.from(','))
        write(element)
      })
      parts.push(Buffer.from(']'))
    } else if (item !== null && typeof item === 'object') {
      parts.push(Buffer.from('{'))
      Object.entries(item).forEach(([key, element], index) => {
        if (index > 0) parts.push(Buffer.from(','))
        parts.push(Buffer.from(`${JSON.stringify(key)}:`))
        write(element)
      })
      parts.push(Buffer.from('}'))
    } else parts.push(Buffer.from(JSON.stringify(item) ?? 'null'))
  }
  write(value)
  return new Body(Buffer.concat(parts))
}

const TOOL = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
}

/** A valid request per route with most optional fields set, so that mutations reach them. */
export const TEMPLATES: Record<InferenceRoute | '/api/show', Record<string, unknown>> = {
  '/v1/chat/completions': {
    model: MODEL,
    messages: [
      { role: 'system', content: 'Be brief' },
      { role: 'user', content: [{ type: 'text', text: 'Weather in Paris?' }] },
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          {
            id: 'call_1',
            type: 'function',
            function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
          },
        ],
      },
      { role: 'tool', tool_call_id: 'call_1', content: 'sunny' },
      { role: 'user', content: 'Thanks' },
    ],
    max_tokens: 4,
    temperature: 0,
    top_p: 0.9,
    seed: 1,
    stop: ['\n\n'],
    stream: false,
    tools: [TOOL],
    tool_choice: 'auto',
    response_format: { type: 'text' },
    user: 'fuzz',
  },
  '/v1/completions': {
    model: MODEL,
    prompt: 'Once upon a time',
    max_tokens: 4,
    temperature: 0.5,
    stream: true,
    stream_options: { include_usage: true },
    stop: 'The end',
    echo: false,
  },
  '/v1/embeddings': { model: MODEL, input: ['hello', 'world'], encoding_format: 'float' },
  '/api/chat': {
    model: MODEL,
    messages: [
      { role: 'system', content: 'Be brief' },
      { role: 'user', content: 'Weather in Paris?' },
      {
        role: 'assistant',
        content: '',
        tool_calls: [{ function: { name: 'get_weather', arguments: { city: 'Paris' } } }],
      },
      { role: 'tool', tool_name: 'get_weather', content: 'sunny' },
    ],
    tools: [TOOL],
    stream: false,
    options: { num_predict: 4, temperature: 0, seed: 3, stop: ['\n\n'] },
    keep_alive: '5m',
  },
  '/api/generate': {
    model: MODEL,
    prompt: 'Once upon a time',
    system: 'Tell stories',
    stream: true,
    format: 'json',
    options: { num_predict: 4, top_k: 20 },
  },
  '/api/embed': { model: MODEL, input: 'hello', truncate: true },
  '/api/embeddings': { model: MODEL, prompt: 'hello' },
  '/api/show': { model: MODEL },
}

type Path = (string | number)[]

/** Every path inside a template (objects, arrays and leaves), where a mutation can land. */
function pathsOf(value: unknown, prefix: Path = []): Path[] {
  const out: Path[] = prefix.length > 0 ? [prefix] : []
  if (Array.isArray(value)) {
    value.forEach((item, index) => {
      out.push(...pathsOf(item, [...prefix, index]))
    })
  } else if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) out.push(...pathsOf(item, [...prefix, key]))
  }
  return out
}

/** Fields a route knows that its template leaves out: mutations add them too. */
const EXTRA_FIELDS = [
  'n',
  'max_completion_tokens',
  'logprobs',
  'top_logprobs',
  'reasoning_effort',
  'frequency_penalty',
  'presence_penalty',
  'top_k',
  'min_p',
  'repeat_last_n',
  'mirostat',
  'n_keep',
  'suffix',
  'raw',
  'images',
  'context',
  'think',
  'template',
  'dimensions',
  'truncate',
  'keep_alive',
  'id_slot',
  'cache_prompt',
  'format',
  'options',
  'response_format',
  'stream_options',
  'parallel_tool_calls',
  'name',
]

export function deep(depth: number): Raw {
  return raw(`${'['.repeat(depth)}${']'.repeat(depth)}`)
}

/** Values that break naive handlers: wrong types, edge numbers, odd text, raw fragments. */
const nastyValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
  {
    weight: 4,
    arbitrary: fc.constantFrom<unknown>(
      null,
      '',
      0,
      -1,
      1.5,
      -0.5,
      2 ** 31,
      2 ** 53 + 2,
      -(2 ** 63),
      Number.MAX_VALUE,
      Number.MIN_VALUE,
      true,
      [],
      {},
      [[]],
      [null],
      [''],
      MODEL,
      ALIAS,
      'no-such-model',
      'auto',
      { type: 'text' },
      { type: 'image_url', image_url: { url: 'https://example.com/cat.png' } },
      { type: 'image_url', image_url: 'data:image/png;base64,iVBORw0KGgo=' },
      { type: 'input_audio', input_audio: { data: 'AAAA', format: 'wav' } },
      { role: 'user' },
      { role: 'bot', content: 'hi' },
      [{ role: 'user', content: 'hi' }],
      { type: 'function', function: { name: 'f', parameters: { type: 5 } } },
      { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object' } } },
      { type: 'json_schema' },
      { name: 'f', arguments: '{not json' },
      { num_predict: -1, num_ctx: 2 ** 40, num_gpu: -5 },
      'x'.repeat(100_000),
      '日本語 🙂 \u0000 \u202e',
      '\n\n\n',
    ),
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      raw('1e400'),
      raw('-1e400'),
      raw('123456789012345678901234567890'),
      raw('"\\ud800"'),
      raw('"a\\udc00b"'),
      raw('"\\u0000"'),
      raw('"\xff\xfe"'),
      raw('"\xc3"'),
      raw('"\xed\xa0\x80"'),
      deep(150),
      deep(5_000),
      raw(`{"a":${'{"a":'.repeat(200)}1${'}'.repeat(200)}}`),
    ),
  },
)

type Mutation = { path: Path; op: 'delete' } | { path: Path; op: 'set'; value: unknown }

function applyMutation(target: Record<string, unknown>, mutation: Mutation): void {
  let parent: unknown = target
  for (const key of mutation.path.slice(0, -1)) {
    if (parent === null || typeof parent !== 'object') return
    parent = (parent as Record<string | number, unknown>)[key]
  }
  if (parent === null || typeof parent !== 'object' || parent instanceof Raw) return
  const last = mutation.path[mutation.path.length - 1] as string | number
  const holder = parent as Record<string | number, unknown>
  if (mutation.op === 'delete') {
    if (Array.isArray(holder) && typeof last === 'number') holder.splice(last, 1)
    else delete holder[last]
  } else holder[last] = mutation.value
}

export function nearValid(route: keyof typeof TEMPLATES): fc.Arbitrary<Body> {
  const template = TEMPLATES[route]
  const paths = [...pathsOf(template), ...EXTRA_FIELDS.map((field) => [field])]
  const mutation: fc.Arbitrary<Mutation> = fc.oneof(
    fc.record({ path: fc.constantFrom(...paths), op: fc.constant('delete' as const) }),
    fc.record({ path: fc.constantFrom(...paths), op: fc.constant('set' as const), value: nastyValue }),
  )
  return fc.array(mutation, { maxLength: 3 }).map((mutations) => {
    const body = structuredClone(template)
    for (const one of mutations) applyMutation(body, one)
    return serialize(body)
  })
}

export function bodyFor(route: keyof typeof TEMPLATES): fc.Arbitrary<Body> {
  return fc.oneof(
    { weight: 8, arbitrary: nearValid(route) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 120 }).map((bytes) => new Body(Buffer.from(bytes))) },
    { weight: 1, arbitrary: fc.json({ maxDepth: 3 }).map((text) => new Body(Buffer.from(text))) },
    {
      weight: 1,
      arbitrary: fc
        .constantFrom(
          '',
          ' ',
          'null',
          '[]',
          '{}',
          '"x"',
          '{"model":',
          '\u0000',
          `{"model":"${MODEL}"}`,
          '\ufeff{}',
        )
        .map((text) => new Body(Buffer.from(text))),
    },
  )
}
