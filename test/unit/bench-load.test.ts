import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type {
  BackendClient,
  ChatMessage,
  ChatStreamRequest,
  StreamEvent,
} from '../../src/core/backends/types.js'
import { interTokenGaps, runLevel } from '../../src/core/bench/load.js'
import { seededRandom } from '../../src/core/bench/stats.js'
import { buildSyntheticWorkload, loadDataset, uniqueTag } from '../../src/core/bench/workload.js'
import { VeloError } from '../../src/core/errors.js'

/**
 * An in-process stand-in for a server: streams `tokens` pieces a few ms apart, counts how many
 * requests run at once, and fails the requests `fail` picks. Plain input for the load generator's
 * own logic; the real engines are exercised in test/integration/bench.test.ts.
 */
class ScriptedClient implements BackendClient {
  readonly kind = 'openai' as const
  readonly api = 'openai' as const
  readonly baseUrl = 'http://scripted'
  running = 0
  maxRunning = 0
  calls = 0
  requests: ChatStreamRequest[] = []
  constructor(private readonly fail: (call: number) => VeloError | undefined = () => undefined) {}
  async listModels() {
    return [{ id: 'm', sizeBytes: undefined, digest: undefined, parameterCount: undefined }]
  }
  async version() {
    return undefined
  }
  async *chatStream(request: ChatStreamRequest, signal?: AbortSignal): AsyncGenerator<StreamEvent> {
    this.calls += 1
    this.requests.push(request)
    const failure = this.fail(this.calls)
    if (failure) throw failure
    this.running += 1
    this.maxRunning = Math.max(this.maxRunning, this.running)
    try {
      const tokens = request.maxTokens ?? 4
      for (let index = 0; index < tokens; index += 1) {
        await new Promise((resolve) => setTimeout(resolve, 2))
        if (signal?.aborted) throw Object.assign(new Error('aborted'), { name: 'AbortError' })
        yield { type: 'token', text: 'x', at: performance.now() }
      }
      yield {
        type: 'end',
        at: performance.now(),
        usage: { promptTokens: 20, completionTokens: tokens },
        timings: undefined,
        finishReason: 'length',
      }
    } finally {
      this.running -= 1
    }
  }
  async close() {}
}

function plan(client: BackendClient, overrides: Partial<Parameters<typeof runLevel>[0]> = {}) {
  return {
    client,
    model: 'm',
    concurrency: 3,
    requests: 10,
    arrivals: 'poisson' as const,
    random: seededRandom(1),
    next: () => ({
      messages: [{ role: 'user' as const, content: 'hi' }],
      maxTokens: 4,
      expectedPromptTokens: 20,
    }),
    options: {},
    ignoreEos: true,
    ...overrides,
  }
}

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'velo-bench-load-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('load generation', () => {
  it('sends exactly --requests requests, never more than --concurrency at once', async () => {
    const client = new ScriptedClient()
    const result = await runLevel(plan(client))
    expect(result.records).toHaveLength(10)
    expect(client.calls).toBe(10)
    expect(client.maxRunning).toBe(3)
    expect(result.fatal).toBeUndefined()
    for (const record of result.records) {
      expect(record.ok).toBe(true)
      expect(record.outputTokens).toBe(4)
      expect(record.gapsMs).toHaveLength(3)
      expect(record.ttftMs).toBeLessThanOrEqual(record.e2eMs)
    }
  })

  it('sends at a rate with at most --concurrency in flight', async () => {
    const client = new ScriptedClient()
    const result = await runLevel(
      plan(client, { rate: 500, arrivals: 'constant', concurrency: 2, requests: 6 }),
    )
    expect(result.records).toHaveLength(6)
    expect(client.maxRunning).toBeLessThanOrEqual(2)
    const sent = result.records.map((record) => record.sentMs).sort((a, b) => a - b)
    // Constant arrivals every 2 ms: each is sent no earlier than its slot.
    for (const [index, at] of sent.entries()) expect(at).toBeGreaterThanOrEqual(index * 2 - 1)
  })

  it('runs for a duration when no request count is given', async () => {
    const client = new ScriptedClient()
    const result = await runLevel(plan(client, { requests: undefined, durationMs: 60, concurrency: 2 }))
    expect(result.records.length).toBeGreaterThan(0)
    expect(result.records.every((record) => record.ok)).toBe(true)
  })

  it('counts failed requests and goes on', async () => {
    const client = new ScriptedClient((call) =>
      call % 4 === 0 ? new VeloError('VELO_UPSTREAM_ERROR', 'answered 500') : undefined,
    )
    const result = await runLevel(plan(client, { concurrency: 1, requests: 8 }))
    expect(result.records.filter((record) => !record.ok)).toHaveLength(2)
    expect(result.records.find((record) => !record.ok)?.error).toBe('answered 500')
    expect(result.fatal).toBeUndefined()
  })

  it('stops at once, keeping what completed, when the server becomes unreachable', async () => {
    const client = new ScriptedClient((call) =>
      call >= 4
        ? new VeloError('VELO_UPSTREAM_UNREACHABLE', 'cannot reach http://scripted (ECONNREFUSED)')
        : undefined,
    )
    const result = await runLevel(plan(client, { concurrency: 1, requests: 50 }))
    expect(result.fatal?.code).toBe('VELO_UPSTREAM_UNREACHABLE')
    expect(result.records.filter((record) => record.ok)).toHaveLength(3)
    expect(client.calls).toBe(4)
  })

  it('gives up when every one of the first requests fails', async () => {
    const client = new ScriptedClient(() => new VeloError('VELO_UPSTREAM_ERROR', 'answered 500: broken'))
    const result = await runLevel(plan(client, { concurrency: 2, requests: 100 }))
    expect(result.fatal?.message).toMatch(/the first \d+ requests failed: answered 500: broken/)
    expect(client.calls).toBeLessThan(10)
  })
})

describe('workloads', () => {
  /** A client whose tokenizer counts words plus a fixed template overhead. */
  function countingClient(overhead: number): BackendClient {
    const client = new ScriptedClient()
    return Object.assign(client, {
      countPromptTokens: async (_model: string, messages: ChatMessage[]) =>
        overhead + messages.reduce((sum, message) => sum + message.content.split(' ').length, 0),
    })
  }

  it('builds prompts of the exact token length, unique from their first token', async () => {
    const client = countingClient(7)
    const workload = await buildSyntheticWorkload(client, {
      model: 'm',
      promptTokens: 100,
      genTokens: 16,
      seed: 3,
    })
    expect(workload.promptTokens).toBe(100)
    expect(workload.calibration).toBe('tokenizer')
    const first = workload.next()
    const second = workload.next()
    expect(first.maxTokens).toBe(16)
    const count = client.countPromptTokens?.bind(client)
    expect(await count?.('m', first.messages)).toBe(100)
    expect(await count?.('m', second.messages)).toBe(100)
    expect(first.messages[0]?.content.split(' ')[0]).not.toBe(second.messages[0]?.content.split(' ')[0])
    expect(first.messages[0]?.content.slice(8)).not.toBe(second.messages[0]?.content.slice(8))
  })

  it('shares one system prompt across requests for shared-prefix workloads', async () => {
    const workload = await buildSyntheticWorkload(countingClient(5), {
      model: 'm',
      promptTokens: 80,
      genTokens: 8,
      sharedPrefixTokens: 40,
      seed: 1,
    })
    const [a, b] = [workload.next(), workload.next()]
    expect(workload.kind).toBe('shared-prefix')
    expect(a.messages[0]).toEqual(b.messages[0])
    expect(a.messages[0]?.role).toBe('system')
    expect(a.messages[1]?.content).not.toEqual(b.messages[1]?.content)
  })

  it('calibrates from usage counts when the server has no tokenizer', async () => {
    const workload = await buildSyntheticWorkload(new ScriptedClient(), {
      model: 'm',
      promptTokens: 20,
      genTokens: 4,
      seed: 1,
    })
    // The scripted server reports 20 prompt tokens whatever it gets.
    expect(workload.calibration).toBe('usage')
    expect(workload.promptTokens).toBe(20)
  })

  it('says when the prompt is shorter than the template', async () => {
    await expect(
      buildSyntheticWorkload(countingClient(30), { model: 'm', promptTokens: 10, genTokens: 4, seed: 1 }),
    ).rejects.toThrow(/--prompt-tokens 10 is shorter than the chat template and request tag \(31 tokens\)/)
  })

  it('makes distinct tags of one width', () => {
    const tags = new Set(Array.from({ length: 1000 }, (_, index) => uniqueTag(index)))
    expect(tags.size).toBe(1000)
    for (const tag of tags) expect(tag).toMatch(/^\d{6}:$/)
  })

  it('reads a JSONL dataset of prompts and chats, and names a bad line', async () => {
    const file = join(dir, 'prompts.jsonl')
    await writeFile(
      file,
      [
        JSON.stringify({ prompt: 'Why is the sky blue?' }),
        '',
        JSON.stringify({
          messages: [
            { role: 'system', content: 'Be brief.' },
            { role: 'user', content: 'Hi' },
          ],
          max_tokens: 5,
        }),
      ].join('\n'),
    )
    const workload = await loadDataset(file, 32)
    const [a, b, c] = [workload.next(), workload.next(), workload.next()]
    expect(a).toEqual({
      messages: [{ role: 'user', content: 'Why is the sky blue?' }],
      maxTokens: 32,
      expectedPromptTokens: undefined,
    })
    expect(b.messages).toHaveLength(2)
    expect(b.maxTokens).toBe(5)
    expect(c).toEqual(a)
    const bad = join(dir, 'bad.jsonl')
    await writeFile(bad, `${JSON.stringify({ prompt: 'ok' })}\n{"messages": "nope"}\n`)
    await expect(loadDataset(bad, 8)).rejects.toThrow(`--dataset ${bad}:2: expected {"prompt": "..."}`)
    await expect(loadDataset(join(dir, 'none.jsonl'), 8)).rejects.toThrow(/--dataset: cannot read/)
  })
})

describe('inter-token latency', () => {
  it('splits the gap before a read among the pieces it brought, pieces with the first at 0 ms', () => {
    expect(
      interTokenGaps([
        { at: 100, pieces: 2 },
        { at: 110, pieces: 1 },
        { at: 130, pieces: 4 },
      ]),
    ).toEqual([0, 10, 5, 5, 5, 5])
    expect(interTokenGaps([{ at: 5, pieces: 3 }])).toEqual([0, 0])
    expect(interTokenGaps([])).toEqual([])
  })
})
