import { Ajv } from 'ajv'
import { describe, expect, it } from 'vitest'
import { enforcementFields, parseEnforcedOutput, toolCallSchema } from '../../src/proxy/repair/enforce.js'
import { repairOpenAIChatResponse } from '../../src/proxy/repair/formats.js'
import { repairToolCalls } from '../../src/proxy/repair/repair.js'
import { planToolCallRetry } from '../../src/proxy/repair/retry.js'
import { OpenAIToolCallStream, TextGate } from '../../src/proxy/repair/stream.js'
import { type ToolCallEvent, ToolCallRepairer } from '../../src/proxy/repair/tool-call-repair.js'
import { toolsFromRequest } from '../../src/proxy/repair/types.js'

const body = {
  model: 'm',
  messages: [{ role: 'user', content: 'Weather in Paris?' }],
  tools: [
    {
      type: 'function',
      function: {
        name: 'get_weather',
        parameters: {
          type: 'object',
          properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['c', 'f'] } },
          required: ['city'],
        },
      },
    },
    { type: 'function', function: { name: 'get_time' } },
  ],
}
const tools = toolsFromRequest(body)

function completion(content: string | null, toolCalls?: { id?: string; name: string; arguments: string }[]) {
  return {
    id: 'chatcmpl-1',
    object: 'chat.completion',
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content,
          tool_calls: toolCalls?.map((c) => ({
            id: c.id,
            type: 'function',
            function: { name: c.name, arguments: c.arguments },
          })),
        },
        finish_reason: toolCalls ? 'tool_calls' : 'stop',
      },
    ],
  }
}

describe('repair leaves good output alone', () => {
  it('returns a valid response unchanged (same object) and keeps the upstream argument text', () => {
    const response = completion(null, [
      { id: 'call_1', name: 'get_weather', arguments: '{ "city" : "Paris" }' },
    ])
    const { response: out, results } = repairOpenAIChatResponse(response, tools)
    expect(out).toBe(response)
    expect(results[0]).toMatchObject({ ok: true, changed: false })
  })

  it('does not take an ordinary JSON answer for a tool call', () => {
    const answer = '{"name": "Alice", "age": 31}'
    const result = repairToolCalls({ content: answer, toolCalls: [] }, tools)
    expect(result).toMatchObject({ content: answer, calls: [], ok: true, changed: false })
  })

  it('does nothing to text answers of requests without tools', () => {
    const response = completion('<tool_call>{"name": "x", "arguments": {}}</tool_call>')
    expect(repairOpenAIChatResponse(response, []).response).toBe(response)
  })
})

describe('TextGate (streamed text)', () => {
  it('passes plain text through, keeping back only what may start a marker', () => {
    const gate = new TextGate(['get_weather'])
    expect(gate.push('Hello ')).toBe('Hello ')
    expect(gate.push('there <tool')).toBe('there ')
    expect(gate.push('kit>')).toBe('<toolkit>')
    expect(gate.isHolding).toBe(false)
  })

  it('holds from a marker on, and from the start when the message opens like a call', () => {
    const gate = new TextGate(['get_weather'])
    expect(gate.push('Let me check. <tool_call>{"name"')).toBe('Let me check. ')
    expect(gate.isHolding).toBe(true)
    expect(gate.push(': "get_weather"}')).toBe('')
    expect(gate.take()).toBe('<tool_call>{"name": "get_weather"}')
    const opening = new TextGate(['get_weather'])
    expect(opening.push('  get_wea')).toBe('')
    expect(opening.push('ther(city="Paris")')).toBe('')
    expect(opening.isHolding).toBe(true)
    const plain = new TextGate(['get_weather'])
    expect(plain.push('ge')).toBe('')
    expect(plain.push('neral answer')).toBe('general answer')
  })

  it('sends held text that was not a call after all, in full', () => {
    const stream = new OpenAIToolCallStream(tools)
    const base = { id: 'x', object: 'chat.completion.chunk', created: 1, model: 'm' }
    const text = 'Use this:\n```js\nconsole.log(1)\n```\nDone.'
    const out = [
      ...stream.push({
        ...base,
        choices: [{ index: 0, delta: { content: text.slice(0, 12) }, finish_reason: null }],
      }),
      ...stream.push({
        ...base,
        choices: [{ index: 0, delta: { content: text.slice(12) }, finish_reason: null }],
      }),
      ...stream.push({ ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }),
    ] as { choices: { delta: { content?: string }; finish_reason: string | null }[] }[]
    expect(out.map((e) => e.choices[0]?.delta.content ?? '').join('')).toBe(text)
    expect(out[out.length - 1]?.choices[0]?.finish_reason).toBe('stop')
  })
})

describe('retries and errors', () => {
  it('plans a corrective retry, then gives a clear error when retries are used up', () => {
    const result = repairToolCalls(
      { content: null, toolCalls: [{ id: 'c', name: 'get_weather', arguments: '{"unit": "kelvin"}' }] },
      tools,
    )
    expect(result.ok).toBe(false)
    const plan = planToolCallRetry(result, 0, { retries: 1 })
    expect(plan).toMatchObject({ retry: true, attempt: 1, overrides: { temperature: 0 } })
    if (!plan?.retry) throw new Error('expected a retry')
    expect(plan.messages.map((m) => m.role)).toEqual(['assistant', 'user'])
    expect(plan.messages[1]?.content).toMatch(/missing required property "city"/)
    expect(plan.messages[1]?.content).toMatch(/must be one of "c", "f"/)
    const last = planToolCallRetry(result, 1, { retries: 1 })
    expect(last).toMatchObject({ retry: false })
    if (last?.retry !== false) throw new Error('expected an error')
    expect(last.error).toMatchObject({ code: 'VELO_TOOL_CALL_INVALID', status: 502 })
    expect(last.error.message).toMatch(/2 times: get_weather: /)
    expect(last.error.suggestion).toMatch(/toolCalls.enforce/)
  })

  it('lets the server retry a stream before any call reaches the client (deferInvalid)', () => {
    const stream = new OpenAIToolCallStream(tools, { deferInvalid: true })
    const base = { id: 'x', object: 'chat.completion.chunk', created: 1, model: 'm' }
    stream.push({
      ...base,
      choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }],
    })
    stream.push({
      ...base,
      choices: [
        {
          index: 0,
          delta: {
            tool_calls: [
              { index: 0, id: 'c1', function: { name: 'get_weather', arguments: '{"unit":"x"}' } },
            ],
          },
          finish_reason: null,
        },
      ],
    })
    expect(stream.push({ ...base, choices: [{ index: 0, delta: {}, finish_reason: 'tool_calls' }] })).toEqual(
      [],
    )
    expect(stream.awaitingDecision?.problems[0]?.kind).toBe('schema')
    const retried = repairToolCalls(
      { content: '{"name": "get_weather", "arguments": {"city": "Paris"}}', toolCalls: [] },
      tools,
    )
    const out = stream.resolve(retried) as {
      choices: {
        delta: { tool_calls?: { function: { arguments: string } }[] }
        finish_reason: string | null
      }[]
    }[]
    expect(out[0]?.choices[0]?.delta.tool_calls?.[0]?.function.arguments).toBe('{"city":"Paris"}')
    expect(out[out.length - 1]?.choices[0]?.finish_reason).toBe('tool_calls')
    expect(stream.awaitingDecision).toBeUndefined()
  })
})

describe('enforcement schema', () => {
  it('allows exactly a call to one of the tools, closing objects and capping unbounded strings', () => {
    const schema = toolCallSchema(tools, 'required', { maxStringLength: 32 })
    const ajv = new Ajv({ strict: false })
    const validate = ajv.compile(schema ?? {})
    expect(validate({ name: 'get_weather', arguments: { city: 'Paris', unit: 'c' } })).toBe(true)
    expect(validate({ name: 'get_time', arguments: {} })).toBe(true)
    expect(validate({ name: 'get_weather', arguments: { unit: 'c' } })).toBe(false)
    expect(validate({ name: 'get_weather', arguments: { city: 'Paris', extra: 1 } })).toBe(false)
    expect(validate({ name: 'get_weather', arguments: { city: 'x'.repeat(33) } })).toBe(false)
    expect(validate({ name: 'nope', arguments: {} })).toBe(false)
    expect(validate({ content: 'text' })).toBe(false)
  })

  it('narrows to the named tool, allows text for auto, and enforces nothing for none', () => {
    const named = toolCallSchema(tools, { type: 'function', function: { name: 'get_time' } })
    expect(named).toMatchObject({ properties: { name: { const: 'get_time' } } })
    const auto = toolCallSchema(tools, 'auto') as { anyOf: unknown[] }
    expect(auto.anyOf).toHaveLength(3)
    expect(toolCallSchema(tools, 'none')).toBeUndefined()
  })

  it('builds the request fields for llama-server (response_format) and Ollama (format)', () => {
    expect(enforcementFields('openai', tools, 'required')).toMatchObject({
      response_format: {
        type: 'json_schema',
        json_schema: { name: 'tool_call', schema: { anyOf: expect.any(Array) } },
      },
    })
    expect(enforcementFields('ollama', tools, 'required')).toMatchObject({
      format: { anyOf: expect.any(Array) },
    })
  })

  it('reads an enforced answer back as a call, or as text', () => {
    const call = parseEnforcedOutput('{"name": "get_weather", "arguments": {"city": "Paris"}}', tools)
    expect(call.calls).toMatchObject([{ name: 'get_weather', arguments: { city: 'Paris' } }])
    const text = parseEnforcedOutput('{"content": "It is sunny."}', tools)
    expect(text).toMatchObject({ calls: [], content: 'It is sunny.' })
  })
})

describe('ToolCallRepairer (the server-facing stage)', () => {
  it('counts repaired, recovered, invalid and retried calls, and plans retries', () => {
    const events: ToolCallEvent[] = []
    const repairer = new ToolCallRepairer({ retries: 1 }, { onEvent: (event) => events.push(event) })
    repairer.openAI(completion(null, [{ name: 'get_weather', arguments: "{'city': 'Paris'}" }]), body, 'm')
    repairer.openAI(
      completion('<tool_call>{"name": "get_weather", "arguments": {"city": "Rome"}}</tool_call>'),
      body,
      'm',
    )
    const failed = repairer.openAI(completion(null, [{ name: 'get_weather', arguments: '{}' }]), body, 'm')
    expect(failed.retry).toMatchObject({ retry: true, attempt: 1 })
    const again = repairer.openAI(completion(null, [{ name: 'get_weather', arguments: '{}' }]), body, 'm', 1)
    expect(again.retry).toMatchObject({ retry: false, error: { code: 'VELO_TOOL_CALL_INVALID' } })
    expect(repairer.stats()).toMatchObject({ repaired: 1, recovered: 1, invalid: 2, retried: 1 })
    expect(events.map((e) => e.type)).toEqual(['repaired', 'recovered', 'invalid', 'retried', 'invalid'])
  })

  it('passes invalid calls on unchanged when onInvalid is pass and retries are off', () => {
    const repairer = new ToolCallRepairer({ retries: 0, onInvalid: 'pass' })
    const { response, retry } = repairer.openAI(
      completion(null, [{ id: 'c1', name: 'get_weather', arguments: '{}' }]),
      body,
      'm',
    )
    expect(retry).toBeUndefined()
    const message = (response as ReturnType<typeof completion>).choices[0]?.message
    expect(message?.tool_calls?.[0]).toMatchObject({
      id: 'c1',
      function: { name: 'get_weather', arguments: '{}' },
    })
  })

  it('enforces only for configured models and requests with tools', () => {
    const repairer = new ToolCallRepairer({
      enforce: { models: ['tiny'], maxStringLength: 16, maxArrayItems: 0, allowText: false },
    })
    expect(repairer.enforcement('openai', body, 'other')).toBeUndefined()
    expect(repairer.enforcement('openai', { messages: [] }, 'tiny')).toBeUndefined()
    const fields = repairer.enforcement('ollama', { ...body, tool_choice: 'auto' }, 'tiny') as {
      format: { anyOf: unknown[] }
    }
    expect(fields.format.anyOf).toHaveLength(2)
    expect(repairer.stats().enforced).toBe(1)
  })
})
