import { Ajv } from 'ajv'
import { createParser } from 'eventsource-parser'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { LlamaServer } from '../../src/core/engine/llama-server.js'
import { repairToolCalls } from '../../src/proxy/repair/repair.js'
import { ToolCallRepairer } from '../../src/proxy/repair/tool-call-repair.js'
import { toolsFromRequest } from '../../src/proxy/repair/types.js'
import { lacks, type RigOllama, required, rig, startRigLlamaServer, startRigOllama } from '../helpers/rig.js'

/**
 * Enforcement mode against real engines: the tiny synthetic model has random weights and writes
 * gibberish, so any valid tool call it returns comes from constrained decoding, not from the model.
 */

const MODEL = 'velo-tiny'
const tools = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'Current weather in a city',
      parameters: {
        type: 'object',
        properties: {
          city: { type: 'string' },
          unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
          days: { type: 'integer', minimum: 1, maximum: 14 },
        },
        required: ['city', 'days'],
      },
    },
  },
  {
    type: 'function',
    function: {
      name: 'create_event',
      description: 'Create a calendar event',
      parameters: {
        type: 'object',
        properties: {
          title: { type: 'string' },
          attendees: { type: 'array', items: { type: 'string' } },
          all_day: { type: 'boolean' },
        },
        required: ['title', 'attendees'],
      },
    },
  },
]
const specs = toolsFromRequest({ tools })
const ajv = new Ajv({ strict: false })

/** Enforcement with bounds that let even a rambling model finish its call within max_tokens. */
const repairer = new ToolCallRepairer({
  enforce: { models: [MODEL], maxStringLength: 24, maxArrayItems: 3, allowText: false },
})

function chatBody(seed: number, extra: Record<string, unknown> = {}) {
  return {
    model: MODEL,
    messages: [
      { role: 'system', content: 'You call tools.' },
      { role: 'user', content: 'What is the weather in Paris for the next three days?' },
    ],
    tools,
    tool_choice: 'required',
    seed,
    ...extra,
  }
}

function expectSchemaValid(calls: { name: string; arguments: Record<string, unknown> }[]): void {
  expect(calls).toHaveLength(1)
  for (const call of calls) {
    const schema = specs.find((tool) => tool.name === call.name)?.parameters
    expect(schema, `a declared tool: ${call.name}`).toBeDefined()
    expect(ajv.validate(schema ?? {}, call.arguments), ajv.errorsText()).toBe(true)
  }
}

async function postJson(url: string, body: unknown): Promise<Record<string, unknown>> {
  const response = await request(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  const parsed = (await response.body.json()) as Record<string, unknown>
  expect(response.statusCode, JSON.stringify(parsed)).toBe(200)
  return parsed
}

const SEEDS = [1, 2, 3, 4, 5]
/**
 * Ollama's sampler checks the grammar against the whole vocabulary for every token, which on two CPU
 * cores makes constrained decoding take seconds per call: fewer seeds and shorter strings there.
 */
const OLLAMA_SEEDS = [1, 2]
const ollamaRepairer = new ToolCallRepairer({
  enforce: { models: [MODEL], maxStringLength: 12, maxArrayItems: 2, allowText: false },
})

describe.skipIf(lacks('llama-server'))('enforcement through llama-server (json_schema)', () => {
  let server: LlamaServer
  beforeAll(async () => {
    server = await startRigLlamaServer({ args: ['--jinja'] })
  })
  afterAll(async () => {
    await server?.stop()
  })

  it('without enforcement, the synthetic model writes no valid tool call (the control)', async () => {
    const body = chatBody(3, { max_tokens: 64 })
    const response = await postJson(`${server.url}/v1/chat/completions`, body)
    const { results } = repairer.openAI(response, body, 'not-enforced')
    const valid = results.flatMap((result) => result.calls)
    expect(valid).toEqual([])
  })

  it('returns a schema-valid tool call for every seed, non-streamed', async () => {
    for (const seed of SEEDS) {
      const body = chatBody(seed, { max_tokens: 400 })
      const fields = repairer.enforcement('openai', body, MODEL)
      expect(fields).toHaveProperty('response_format')
      const response = await postJson(`${server.url}/v1/chat/completions`, { ...body, ...fields })
      const choice = (response['choices'] as { message: { content: string }; finish_reason: string }[])[0]
      expect(choice?.finish_reason).toBe('stop')
      const result = repairer.parseEnforced(choice?.message.content ?? '', body, MODEL)
      expect(result.problems).toEqual([])
      expectSchemaValid(result.calls)
      // The same answer through the response path: the JSON text becomes OpenAI tool_calls.
      const repaired = repairer.openAI(response, body, MODEL).response as {
        choices: {
          message: { tool_calls: { function: { name: string; arguments: string } }[] }
          finish_reason: string
        }[]
      }
      const call = repaired.choices[0]?.message.tool_calls[0]
      expect(repaired.choices[0]?.finish_reason).toBe('tool_calls')
      expectSchemaValid([
        { name: call?.function.name ?? '', arguments: JSON.parse(call?.function.arguments ?? '{}') },
      ])
    }
  })

  it('returns a schema-valid tool call streamed, re-emitted as OpenAI tool-call deltas', async () => {
    const body = chatBody(11, { max_tokens: 400, stream: true })
    const fields = repairer.enforcement('openai', body, MODEL)
    const response = await request(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...body, ...fields }),
    })
    expect(response.statusCode).toBe(200)
    const assembler = repairer.openAIStream(body, MODEL)
    if (!assembler) throw new Error('repair is on')
    const out: unknown[] = []
    const parser = createParser({
      onEvent: (event) => {
        if (event.data === '[DONE]') out.push(...assembler.end())
        else out.push(...assembler.push(JSON.parse(event.data)))
      },
    })
    for await (const chunk of response.body) parser.feed(Buffer.from(chunk).toString('utf8'))
    let content = ''
    let name = ''
    let args = ''
    let finish: string | undefined
    for (const event of out as {
      choices: { delta: Record<string, unknown>; finish_reason: string | null }[]
    }[]) {
      for (const choice of event.choices) {
        if (choice.finish_reason) finish = choice.finish_reason
        if (typeof choice.delta['content'] === 'string') content += choice.delta['content']
        for (const call of (choice.delta['tool_calls'] ?? []) as {
          function: { name?: string; arguments?: string }
        }[]) {
          name += call.function.name ?? ''
          args += call.function.arguments ?? ''
        }
      }
    }
    expect(content).toBe('')
    expect(finish).toBe('tool_calls')
    expectSchemaValid([{ name, arguments: JSON.parse(args) }])
    expect(assembler.results[0]?.recoveredFrom).toBe('json')
  })
})

describe.skipIf(lacks('ollama'))('enforcement through Ollama (format)', () => {
  let ollama: RigOllama
  beforeAll(async () => {
    ollama = await startRigOllama()
    await ollama.create(MODEL, required(rig().tinyModel, 'tiny model'))
  })
  afterAll(async () => {
    await ollama?.stop()
  })

  const ollamaBody = (seed: number, extra: Record<string, unknown> = {}) => {
    const { tool_choice: _choice, seed: _seed, ...rest } = chatBody(seed)
    return { ...rest, tool_choice: 'required', stream: false, options: { seed, num_predict: 400 }, ...extra }
  }

  it('without enforcement, the synthetic model writes no valid tool call (the control)', async () => {
    const body = ollamaBody(3, { options: { seed: 3, num_predict: 64 } })
    const response = await postJson(`${ollama.url}/api/chat`, body)
    const { result } = repairer.ollama(response, body, 'not-enforced')
    expect(result?.calls ?? []).toEqual([])
    const message = response['message'] as { content: string }
    expect(repairToolCalls({ content: message.content, toolCalls: [] }, specs).calls).toEqual([])
  })

  it('returns a schema-valid tool call for every seed, non-streamed', async () => {
    for (const seed of OLLAMA_SEEDS) {
      const body = ollamaBody(seed)
      const fields = ollamaRepairer.enforcement('ollama', body, MODEL)
      expect(fields).toHaveProperty('format')
      const response = await postJson(`${ollama.url}/api/chat`, { ...body, ...fields })
      expect(response['done_reason']).toBe('stop')
      const { response: repaired, result } = ollamaRepairer.ollama(response, body, MODEL)
      expect(result?.problems).toEqual([])
      const message = (
        repaired as {
          message: { tool_calls?: { function: { name: string; arguments: Record<string, unknown> } }[] }
        }
      ).message
      expectSchemaValid((message.tool_calls ?? []).map((call) => call.function))
    }
  }, 400_000)

  it('returns a schema-valid tool call streamed as NDJSON', async () => {
    const body = ollamaBody(11, { stream: true })
    const fields = ollamaRepairer.enforcement('ollama', body, MODEL)
    const response = await request(`${ollama.url}/api/chat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...body, ...fields }),
    })
    expect(response.statusCode).toBe(200)
    const assembler = ollamaRepairer.ollamaStream(body, MODEL)
    if (!assembler) throw new Error('repair is on')
    const out: unknown[] = []
    let buffered = ''
    for await (const chunk of response.body) {
      buffered += Buffer.from(chunk).toString('utf8')
      let newline = buffered.indexOf('\n')
      while (newline >= 0) {
        const line = buffered.slice(0, newline).trim()
        buffered = buffered.slice(newline + 1)
        if (line) out.push(...assembler.push(JSON.parse(line)))
        newline = buffered.indexOf('\n')
      }
    }
    out.push(...assembler.end())
    const events = out as {
      message?: {
        content: string
        tool_calls?: { function: { name: string; arguments: Record<string, unknown> } }[]
      }
      done: boolean
    }[]
    expect(events.filter((event) => event.done)).toHaveLength(1)
    expect(events.map((event) => event.message?.content ?? '').join('')).toBe('')
    expectSchemaValid(events.flatMap((event) => event.message?.tool_calls ?? []).map((call) => call.function))
  }, 400_000)
})
