/**
 * The scheduler as the request path sees it: what a queued request that is given up on tells the
 * client. The upstream is never reached (the request is rejected in the queue), so none runs.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/core/config/load.js'
import { createScheduler } from '../../src/proxy/scheduler/scheduler.js'
import { createVeloServer, type VeloServer } from '../../src/proxy/server.js'

let velo: VeloServer | undefined
afterEach(async () => {
  await velo?.close()
  velo = undefined
})

describe('x-velo-queue-ms on a 429', () => {
  it('is the time the request waited in the queue before it timed out', async () => {
    // The scheduler's clock is the test's: the wait it reports is what the test says passed, set
    // long before the real 1 s timeout fires.
    let now = 0
    const scheduler = createScheduler({ queueTimeout: 1000 }, { now: () => now })
    const config = parseConfig({
      server: { port: 0 },
      // Nothing listens there: a configured model stays servable, and this request never leaves the queue.
      upstreams: [{ url: 'http://127.0.0.1:9', kind: 'openai', models: ['m'] }],
    })
    velo = createVeloServer({ config, version: 'test', scheduler, autoOllama: false, refreshIntervalMs: 0 })
    const url = await velo.start()
    scheduler.setCapacity('m', 1)
    const holder = await scheduler.acquire({
      model: 'm',
      priority: 0,
      client: 'holder',
      promptChars: 0,
      signal: new AbortController().signal,
    })
    const response = fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }),
    })
    await new Promise<void>((resolve) => {
      const poll = (): void => {
        if (scheduler.snapshot('m').queueDepth > 0) resolve()
        else setTimeout(poll, 2)
      }
      poll()
    })
    now += 4321
    const answer = await response
    expect(answer.status).toBe(429)
    expect(answer.headers.get('retry-after')).not.toBeNull()
    expect(answer.headers.get('x-velo-queue-ms')).toBe('4321')
    expect(((await answer.json()) as { error: { code: string } }).error.code).toBe('VELO_QUEUE_TIMEOUT')
    holder.release()
  })
})
