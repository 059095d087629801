/**
 * How bench's clients meet connections that break, against a node:http stand-in: a real
 * llama-server or Ollama closes a connection at the wrong moment only now and then.
 */
import { once } from 'node:events'
import { createServer, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { HttpTarget } from '../../src/core/backends/http.js'
import { OllamaClient } from '../../src/core/backends/ollama.js'
import { OpenAIClient } from '../../src/core/backends/openai.js'
import type { StreamEvent } from '../../src/core/backends/types.js'

type Mode =
  | { kind: 'drop-first'; count: number }
  | { kind: 'sse-then-drop'; chunks: number; done: boolean }
  | { kind: 'ndjson-then-drop'; lines: number; done: boolean }

describe('bench clients and broken connections', () => {
  let server: Server
  let url = ''
  let mode: Mode = { kind: 'drop-first', count: 0 }
  let requests = 0
  const sockets = new Set<Socket>()

  /** Once what was written has gone out, cut the connection without ending the chunked body. */
  const cut = (res: ServerResponse): void => {
    res.write('', () => res.socket?.destroy())
  }

  beforeAll(async () => {
    server = createServer((req, res) => {
      requests++
      sockets.add(req.socket)
      req.resume()
      req.on('end', () => {
        if (mode.kind === 'drop-first') {
          if (requests <= mode.count) {
            req.socket.destroy()
            return
          }
          res.writeHead(200, { 'content-type': 'application/json' })
          res.end('{"ok":true}')
          return
        }
        if (mode.kind === 'sse-then-drop') {
          res.writeHead(200, { 'content-type': 'text/event-stream' })
          for (let index = 0; index < mode.chunks; index++) {
            res.write(`data: ${JSON.stringify({ choices: [{ delta: { content: `t${index}` } }] })}\n\n`)
          }
          if (mode.done) {
            res.write(`data: ${JSON.stringify({ choices: [{ delta: {}, finish_reason: 'stop' }] })}\n\n`)
            res.write('data: [DONE]\n\n')
          }
          cut(res)
          return
        }
        res.writeHead(200, { 'content-type': 'application/x-ndjson' })
        for (let index = 0; index < mode.lines; index++) {
          res.write(`${JSON.stringify({ message: { content: `t${index}` }, done: false })}\n`)
        }
        if (mode.done)
          res.write(`${JSON.stringify({ message: { content: '' }, done: true, eval_count: mode.lines })}\n`)
        cut(res)
      })
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })
  afterAll(() => {
    server.close()
  })

  const collect = async (events: AsyncGenerator<StreamEvent>): Promise<StreamEvent[]> => {
    const seen: StreamEvent[] = []
    for await (const event of events) seen.push(event)
    return seen
  }

  it('sends again when two connections in a row were closed under the request', async () => {
    requests = 0
    mode = { kind: 'drop-first', count: 2 }
    const target = new HttpTarget(url, { connections: 2 })
    try {
      const answer = await target.json<{ ok: boolean }>('/x', { body: { a: 1 } })
      expect(answer).toEqual({ ok: true })
      expect(requests).toBe(3)
    } finally {
      await target.close()
    }
  })

  it('gives up after two resends and says the connection broke off', async () => {
    requests = 0
    mode = { kind: 'drop-first', count: 3 }
    const target = new HttpTarget(url, { connections: 2 })
    try {
      await expect(target.json('/x', { body: { a: 1 } })).rejects.toThrow(/\/x: the connection broke off/)
      expect(requests).toBe(3)
    } finally {
      await target.close()
    }
  })

  it('keeps an OpenAI-style answer whose connection dropped after [DONE]', async () => {
    mode = { kind: 'sse-then-drop', chunks: 3, done: true }
    const client = new OpenAIClient(url, { kind: 'openai' })
    try {
      const events = await collect(
        client.chatStream({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }),
      )
      expect(events.filter((event) => event.type === 'token').map((event) => event.text)).toEqual([
        't0',
        't1',
        't2',
      ])
      expect(events.at(-1)).toMatchObject({ type: 'end', finishReason: 'stop' })
    } finally {
      await client.close()
    }
  })

  it('names how many chunks arrived when an OpenAI-style stream breaks off mid-answer', async () => {
    mode = { kind: 'sse-then-drop', chunks: 2, done: false }
    const client = new OpenAIClient(url, { kind: 'openai' })
    try {
      await expect(
        collect(client.chatStream({ model: 'm', messages: [{ role: 'user', content: 'hi' }] })),
      ).rejects.toThrow(/the connection broke off \(.+\) after 2 streamed chunks$/)
    } finally {
      await client.close()
    }
  })

  it('keeps an Ollama answer whose connection dropped after its done line', async () => {
    mode = { kind: 'ndjson-then-drop', lines: 3, done: true }
    const client = new OllamaClient(url)
    try {
      const events = await collect(
        client.chatStream({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }),
      )
      expect(events.filter((event) => event.type === 'token')).toHaveLength(3)
      expect(events.at(-1)).toMatchObject({ type: 'end', usage: { completionTokens: 3 } })
    } finally {
      await client.close()
    }
  })

  it('names how many lines arrived when an Ollama stream breaks off mid-answer', async () => {
    mode = { kind: 'ndjson-then-drop', lines: 2, done: false }
    const client = new OllamaClient(url)
    try {
      await expect(
        collect(client.chatStream({ model: 'm', messages: [{ role: 'user', content: 'hi' }] })),
      ).rejects.toThrow(/the connection broke off \(.+\) after 2 lines$/)
    } finally {
      await client.close()
    }
  })
})
