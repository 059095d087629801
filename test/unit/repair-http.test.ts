/**
 * Tool-call repair over HTTP, through velo serve's request path, against a node:http fake upstream
 * whose answers are scripted: a real engine cannot be made to write one particular invalid call, or
 * a particular enforced text answer, on demand.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/core/config/load.js'
import type { VeloConfigInput } from '../../src/core/config/schema.js'
import { ToolCallRepairer } from '../../src/proxy/repair/tool-call-repair.js'
import { createVeloServer, type VeloServer } from '../../src/proxy/server.js'

interface ScriptedUpstream {
  url: string
  server: Server
  /** The request bodies it received, in order. */
  received: Record<string, unknown>[]
}

/** An OpenAI-compatible upstream that answers each chat with the next of `answers` (the last repeats). */
async function scriptedUpstream(answers: unknown[]): Promise<ScriptedUpstream> {
  const received: Record<string, unknown>[] = []
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let text = ''
    req.on('data', (part: Buffer) => {
      text += part.toString()
    })
    req.on('end', () => {
      if (req.method !== 'POST') {
        res.writeHead(404).end()
        return
      }
      received.push(JSON.parse(text) as Record<string, unknown>)
      const answer = answers[Math.min(received.length, answers.length) - 1]
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify(answer))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, received }
}

const WEATHER = {
  type: 'function',
  function: {
    name: 'get_weather',
    parameters: {
      type: 'object',
      properties: { city: { type: 'string' }, days: { type: 'integer', minimum: 1, maximum: 14 } },
      required: ['city', 'days'],
    },
  },
}

function completion(message: Record<string, unknown>, finish = 'tool_calls') {
  return {
    id: 'chatcmpl-1',
    object: 'chat.completion',
    created: 1,
    model: 'm',
    choices: [{ index: 0, message: { role: 'assistant', ...message }, finish_reason: finish }],
  }
}

function callWith(args: string) {
  return completion({
    content: null,
    tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: args } }],
  })
}

/** `days: "many"` is no integer, and no safe coercion makes it one. */
const INVALID = callWith('{"city": "Paris", "days": "many"}')
const VALID = callWith('{"city": "Paris", "days": 3}')

const CHAT = {
  model: 'm',
  messages: [{ role: 'user', content: 'Weather in Paris for three days?' }],
  tools: [WEATHER],
  temperature: 0.7,
}

let upstream: ScriptedUpstream | undefined
let velo: VeloServer | undefined
afterEach(async () => {
  await velo?.close()
  await new Promise((resolve) => upstream?.server.close(resolve))
  velo = undefined
  upstream = undefined
})

async function serveWith(answers: unknown[], toolCalls: VeloConfigInput['toolCalls'] = {}): Promise<string> {
  upstream = await scriptedUpstream(answers)
  const config = parseConfig({
    server: { port: 0 },
    upstreams: [{ url: upstream.url, kind: 'openai', models: ['m'] }],
    toolCalls,
  })
  velo = createVeloServer({
    config,
    version: 'test',
    autoOllama: false,
    refreshIntervalMs: 0,
    repairer: new ToolCallRepairer(config.toolCalls),
  })
  return velo.start()
}

async function chat(url: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  return { status: response.status, body: (await response.json()) as Record<string, unknown> }
}

type Choice = {
  message: { content: string | null; tool_calls?: { function: { name: string; arguments: string } }[] }
  finish_reason: string
}

describe('corrective retries for invalid tool calls, over HTTP', () => {
  it('asks again with the corrective turn and answers 200 with the valid call', async () => {
    const url = await serveWith([INVALID, VALID], { retries: 1 })
    const { status, body } = await chat(url, CHAT)
    expect(status).toBe(200)
    const choice = (body['choices'] as Choice[])[0]
    expect(choice?.finish_reason).toBe('tool_calls')
    expect(JSON.parse(choice?.message.tool_calls?.[0]?.function.arguments ?? '')).toEqual({
      city: 'Paris',
      days: 3,
    })
    const received = upstream?.received ?? []
    expect(received).toHaveLength(2)
    const retry = received[1] as { messages: { role: string; content: string }[]; temperature: number }
    // The conversation, the model's invalid answer, then one corrective user turn, at temperature 0.
    expect(retry.messages).toHaveLength(3)
    expect(retry.messages[1]?.role).toBe('assistant')
    expect(retry.messages[1]?.content).toContain('many')
    expect(retry.messages[2]?.role).toBe('user')
    expect(retry.messages[2]?.content).toMatch(/^Your tool call was not valid:/)
    expect(retry.messages[2]?.content).toContain('days')
    expect(retry.temperature).toBe(0)
  })

  it('answers 502 VELO_TOOL_CALL_INVALID naming the problem after retries + 1 calls', async () => {
    const url = await serveWith([INVALID], { retries: 2 })
    const { status, body } = await chat(url, CHAT)
    expect(status).toBe(502)
    const error = body['error'] as { message: string; code: string }
    expect(error.code).toBe('VELO_TOOL_CALL_INVALID')
    expect(error.message).toContain('3 times')
    expect(error.message).toContain('days')
    expect(upstream?.received).toHaveLength(3)
  })
})

describe('enforcement mode over HTTP', () => {
  const enforce = { enforce: { models: ['m'], allowText: true } }

  it('sends the constraint and unwraps an enforced text answer to a plain assistant message', async () => {
    const url = await serveWith([completion({ content: '{"content": "It is sunny."}' }, 'stop')], enforce)
    const { status, body } = await chat(url, CHAT)
    expect(status).toBe(200)
    const choice = (body['choices'] as Choice[])[0]
    expect(choice?.message.content).toBe('It is sunny.')
    expect(choice?.message.tool_calls).toBeUndefined()
    expect(choice?.finish_reason).toBe('stop')
    const sent = upstream?.received[0] as { response_format?: { type: string } }
    expect(sent.response_format?.type).toBe('json_schema')
  })

  it('turns an enforced call into tool_calls', async () => {
    const url = await serveWith(
      [completion({ content: '{"name": "get_weather", "arguments": {"city": "Oslo", "days": 2}}' }, 'stop')],
      enforce,
    )
    const { body } = await chat(url, CHAT)
    const choice = (body['choices'] as Choice[])[0]
    expect(choice?.finish_reason).toBe('tool_calls')
    expect(choice?.message.tool_calls?.[0]?.function.name).toBe('get_weather')
    expect(JSON.parse(choice?.message.tool_calls?.[0]?.function.arguments ?? '')).toEqual({
      city: 'Oslo',
      days: 2,
    })
  })

  it('unwraps an enforced text answer in a stream too', async () => {
    const url = await serveWith([], enforce)
    // The scripted upstream answers whole JSON; a stream needs SSE: swap in a streaming answer.
    upstream?.server.removeAllListeners('request')
    upstream?.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      req.resume()
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/event-stream' })
        for (const piece of ['{"content": ', '"It is ', 'sunny."}']) {
          res.write(
            `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta: { content: piece }, finish_reason: null }] })}\n\n`,
          )
        }
        res.write(
          `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\n`,
        )
        res.end('data: [DONE]\n\n')
      })
    })
    const response = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...CHAT, stream: true }),
    })
    expect(response.status).toBe(200)
    let content = ''
    for (const frame of (await response.text()).split('\n\n')) {
      const data = frame.replace(/^data: /, '')
      if (!data || data === '[DONE]') continue
      const event = JSON.parse(data) as { choices: { delta: { content?: string; tool_calls?: unknown } }[] }
      for (const choice of event.choices) {
        content += choice.delta.content ?? ''
        expect(choice.delta.tool_calls).toBeUndefined()
      }
    }
    expect(content).toBe('It is sunny.')
  })
})
