/**
 * optimize's Ollama sender against a node:http stand-in, for what a real Ollama does only now and
 * then: a stream that ends without its `done` line (Ollama's guard against a model repeating one
 * token more than 30 times stops it that way).
 */
import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ollamaSender } from '../../src/core/optimize/measure.js'

describe('optimize measuring through Ollama', () => {
  let server: Server
  let url = ''
  let mode: 'done' | 'cut' = 'done'
  const bodies: Record<string, unknown>[] = []

  beforeAll(async () => {
    server = createServer((req, res) => {
      let raw = ''
      req.on('data', (chunk: Buffer) => {
        raw += chunk.toString('utf8')
      })
      req.on('end', () => {
        bodies.push(JSON.parse(raw) as Record<string, unknown>)
        res.writeHead(200, { 'content-type': 'application/x-ndjson' })
        for (const word of ['a', ' b', ' c'])
          res.write(`${JSON.stringify({ response: word, done: false })}\n`)
        if (mode === 'done') {
          res.write(`${JSON.stringify({ response: '', done: true, eval_count: 3, eval_duration: 30e6 })}\n`)
        }
        res.end()
      })
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })
  afterAll(() => {
    server.close()
  })

  it("takes Ollama's counts when the stream ends with its done line", async () => {
    mode = 'done'
    const result = await ollamaSender(url, 'm', { num_thread: 1 })('prompt', 3)
    expect(result.tokens).toBe(3)
    expect(result.genTps).toBeCloseTo(100, 5)
  })

  it('counts the streamed tokens of an answer that ends without its done line', async () => {
    mode = 'cut'
    const result = await ollamaSender(url, 'm', {})('prompt', 64)
    expect(result.tokens).toBe(3)
    expect(result.genTps).toBeUndefined()
  })

  it('samples with a fixed seed rather than greedily, and keeps the candidate options', async () => {
    await ollamaSender(url, 'm', { num_thread: 2, num_batch: 256 })('prompt', 8)
    const options = bodies.at(-1)?.['options'] as Record<string, unknown>
    expect(options).toMatchObject({ num_thread: 2, num_batch: 256, num_predict: 8, seed: 42 })
    // Greedy decoding of a small model loops, and Ollama cuts a loop short: no temperature 0.
    expect(options['temperature']).toBeUndefined()
  })
})
