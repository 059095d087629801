import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Ajv } from 'ajv'
import { describe, expect, it } from 'vitest'
import { repairOllamaChatResponse, repairOpenAIChatResponse } from '../../src/proxy/repair/formats.js'
import { OllamaToolCallStream, OpenAIToolCallStream } from '../../src/proxy/repair/stream.js'
import { type ToolSpec, toolsFromRequest } from '../../src/proxy/repair/types.js'

/**
 * The tool-call corpus: malformed outputs modelled on real models' failures (each fixture names the
 * model and the public report it follows). Every case runs four ways: OpenAI and Ollama responses,
 * streamed and not. A case either yields exactly the expected schema-valid calls (checked again
 * here with a separate ajv) or reports each problem clearly.
 */

const dir = join(import.meta.dirname, '..', 'fixtures', 'tool-calls')
const toolsets = JSON.parse(readFileSync(join(dir, '_toolsets.json'), 'utf8')) as Record<string, unknown[]>

interface Fixture {
  id: string
  model: string
  failure: string
  toolset: string
  content: string | null
  tool_calls: { id?: string; name: string; arguments: unknown }[]
  expect: {
    calls: { name: string; arguments: Record<string, unknown> }[]
    content: string | null
    problems?: { kind: string; contains: string }[]
  }
}

const fixtures = readdirSync(dir)
  .filter((file) => file.endsWith('.json') && !file.startsWith('_'))
  .sort()
  .map((file) => JSON.parse(readFileSync(join(dir, file), 'utf8')) as Fixture)

interface Outcome {
  calls: { id: string; name: string; arguments: Record<string, unknown> }[]
  content: string
  problems: { kind: string; message: string }[]
}

/** Split text into uneven pieces, as token streams do. */
function pieces(text: string): string[] {
  const sizes = [1, 3, 2, 5, 8, 4]
  const out: string[] = []
  let at = 0
  let i = 0
  while (at < text.length) {
    const size = sizes[i++ % sizes.length] ?? 3
    out.push(text.slice(at, at + size))
    at += size
  }
  return out
}

function argumentsText(args: unknown): string {
  return typeof args === 'string' ? args : JSON.stringify(args)
}

function openAI(fixture: Fixture, tools: ToolSpec[]): Outcome {
  const response = {
    id: 'chatcmpl-1',
    object: 'chat.completion',
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content: fixture.content,
          tool_calls: fixture.tool_calls.length
            ? fixture.tool_calls.map((call) => ({
                id: call.id,
                type: 'function',
                function: { name: call.name, arguments: argumentsText(call.arguments) },
              }))
            : undefined,
        },
        finish_reason: fixture.tool_calls.length ? 'tool_calls' : 'stop',
      },
    ],
  }
  const { response: repaired, results } = repairOpenAIChatResponse(response, tools)
  const message = (repaired as typeof response).choices[0]?.message as {
    content: string | null
    tool_calls?: { id: string; function: { name: string; arguments: string } }[]
  }
  const choice = (repaired as { choices: { finish_reason: string }[] }).choices[0]
  if ((message.tool_calls ?? []).length > 0) expect(choice?.finish_reason).toBe('tool_calls')
  return {
    calls: (message.tool_calls ?? []).map((call) => ({
      id: call.id,
      name: call.function.name,
      arguments: JSON.parse(call.function.arguments) as Record<string, unknown>,
    })),
    content: message.content ?? '',
    problems: results.flatMap((result) => result.problems),
  }
}

function openAIStream(fixture: Fixture, tools: ToolSpec[]): Outcome {
  const base = { id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: 'm' }
  const events: unknown[] = [
    { ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] },
  ]
  for (const piece of pieces(fixture.content ?? '')) {
    events.push({ ...base, choices: [{ index: 0, delta: { content: piece }, finish_reason: null }] })
  }
  fixture.tool_calls.forEach((call, index) => {
    events.push({
      ...base,
      choices: [
        {
          index: 0,
          delta: {
            tool_calls: [
              { index, id: call.id, type: 'function', function: { name: call.name, arguments: '' } },
            ],
          },
          finish_reason: null,
        },
      ],
    })
    for (const piece of pieces(argumentsText(call.arguments))) {
      // Some servers repeat an empty name in every delta (GLM through some proxies).
      events.push({
        ...base,
        choices: [
          {
            index: 0,
            delta: { tool_calls: [{ index, function: { name: '', arguments: piece } }] },
            finish_reason: null,
          },
        ],
      })
    }
  })
  events.push({
    ...base,
    choices: [{ index: 0, delta: {}, finish_reason: fixture.tool_calls.length ? 'tool_calls' : 'stop' }],
  })
  events.push({ ...base, choices: [], usage: { prompt_tokens: 10, completion_tokens: 20, total_tokens: 30 } })

  const stream = new OpenAIToolCallStream(tools)
  const out = [...events.flatMap((event) => stream.push(event)), ...stream.end()]
  // Accumulate like a client does.
  let content = ''
  const calls = new Map<number, { id: string; name: string; arguments: string }>()
  let finish: string | undefined
  let usageSeen = false
  for (const event of out as {
    choices: { delta: Record<string, unknown>; finish_reason: string | null }[]
    usage?: unknown
  }[]) {
    if (event.usage) usageSeen = true
    for (const choice of event.choices) {
      if (choice.finish_reason) finish = choice.finish_reason
      if (typeof choice.delta['content'] === 'string') content += choice.delta['content']
      const deltas = (choice.delta['tool_calls'] ?? []) as {
        index: number
        id?: string
        function: { name?: string; arguments?: string }
      }[]
      for (const delta of deltas) {
        const call = calls.get(delta.index) ?? { id: '', name: '', arguments: '' }
        if (delta.id) call.id = delta.id
        call.name += delta.function.name ?? ''
        call.arguments += delta.function.arguments ?? ''
        calls.set(delta.index, call)
      }
    }
  }
  expect(usageSeen).toBe(true)
  if (calls.size > 0) expect(finish).toBe('tool_calls')
  else expect(finish).toBe('stop')
  return {
    calls: [...calls.values()].map((call) => ({
      id: call.id,
      name: call.name,
      arguments: JSON.parse(call.arguments) as Record<string, unknown>,
    })),
    content,
    problems: stream.results.flatMap((result) => result.problems),
  }
}

function ollamaCalls(fixture: Fixture) {
  // Ollama parses arguments into objects; a string reaches velo only when it could not.
  return fixture.tool_calls.map((call) => {
    let args = call.arguments
    if (typeof args === 'string') {
      try {
        const parsed: unknown = JSON.parse(args)
        if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) args = parsed
      } catch {
        // stays a string
      }
    }
    return { function: { name: call.name, arguments: args } }
  })
}

function ollama(fixture: Fixture, tools: ToolSpec[]): Outcome {
  const response = {
    model: 'm',
    created_at: '2025-01-01T00:00:00Z',
    message: {
      role: 'assistant',
      content: fixture.content ?? '',
      tool_calls: fixture.tool_calls.length ? ollamaCalls(fixture) : undefined,
    },
    done: true,
    done_reason: 'stop',
  }
  const { response: repaired, result } = repairOllamaChatResponse(response, tools)
  const message = (repaired as typeof response).message as {
    content: string
    tool_calls?: { id: string; function: { name: string; arguments: Record<string, unknown> } }[]
  }
  return {
    calls: (message.tool_calls ?? []).map((call) => ({
      id: call.id,
      name: call.function.name,
      arguments: call.function.arguments,
    })),
    content: message.content,
    problems: result?.problems ?? [],
  }
}

function ollamaStream(fixture: Fixture, tools: ToolSpec[]): Outcome {
  const base = { model: 'm', created_at: '2025-01-01T00:00:00Z' }
  const events: unknown[] = pieces(fixture.content ?? '').map((piece) => ({
    ...base,
    message: { role: 'assistant', content: piece },
    done: false,
  }))
  if (fixture.tool_calls.length) {
    events.push({
      ...base,
      message: { role: 'assistant', content: '', tool_calls: ollamaCalls(fixture) },
      done: false,
    })
  }
  events.push({
    ...base,
    message: { role: 'assistant', content: '' },
    done: true,
    done_reason: 'stop',
    eval_count: 20,
  })
  const stream = new OllamaToolCallStream(tools)
  const out = [...events.flatMap((event) => stream.push(event)), ...stream.end()] as {
    message: {
      content: string
      tool_calls?: { id: string; function: { name: string; arguments: Record<string, unknown> } }[]
    }
    done: boolean
    eval_count?: number
  }[]
  expect(out[out.length - 1]).toMatchObject({ done: true, eval_count: 20 })
  expect(out.filter((event) => event.done)).toHaveLength(1)
  return {
    calls: out.flatMap((event) =>
      (event.message.tool_calls ?? []).map((call) => ({
        id: call.id,
        name: call.function.name,
        arguments: call.function.arguments,
      })),
    ),
    content: out.map((event) => event.message.content).join(''),
    problems: stream.results.flatMap((result) => result.problems),
  }
}

const ajv = new Ajv({ strict: false, allErrors: true })

const modes = { openai: openAI, 'openai-stream': openAIStream, ollama, 'ollama-stream': ollamaStream }

describe('tool-call corpus', () => {
  it('has at least 40 cases, each naming the model and failure it models', () => {
    expect(fixtures.length).toBeGreaterThanOrEqual(40)
    for (const fixture of fixtures) {
      expect(fixture.model.length).toBeGreaterThan(3)
      expect(fixture.failure.length).toBeGreaterThan(3)
      expect(toolsets[fixture.toolset]).toBeDefined()
      // Every case is broken in some way or needs a clear report: nothing passes through as-is.
      expect(fixture.tool_calls.length > 0 || (fixture.content ?? '').length > 0).toBe(true)
    }
  })

  for (const fixture of fixtures) {
    describe(fixture.id, () => {
      const tools = toolsFromRequest({ tools: toolsets[fixture.toolset] })
      for (const [mode, run] of Object.entries(modes)) {
        it(mode, () => {
          const outcome = run(fixture, tools)
          expect(outcome.calls.map(({ name, arguments: args }) => ({ name, arguments: args }))).toEqual(
            fixture.expect.calls,
          )
          for (const call of outcome.calls) {
            const schema = tools.find((tool) => tool.name === call.name)?.parameters ?? {}
            expect(ajv.validate(schema, call.arguments), `${call.name}: ${ajv.errorsText()}`).toBe(true)
            expect(call.id).toMatch(/\S/)
          }
          expect(new Set(outcome.calls.map((call) => call.id)).size).toBe(outcome.calls.length)
          expect(outcome.content.trim()).toBe(fixture.expect.content ?? '')
          const expected = fixture.expect.problems ?? []
          expect(outcome.problems.map((problem) => problem.kind)).toEqual(
            expected.map((problem) => problem.kind),
          )
          outcome.problems.forEach((problem, i) => {
            expect(problem.message).toContain(expected[i]?.contains ?? '')
          })
        })
      }
    })
  }
})
