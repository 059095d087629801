import { afterAll, describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/core/config/load.js'
import { configSchema } from '../../src/core/config/schema.js'
import { createResponseCache, DEFAULT_CACHE_SETTINGS } from '../../src/proxy/cache/response-cache.js'
import type { AdmissionLease } from '../../src/proxy/pipeline-types.js'
import { DEFAULT_TOOL_CALL_SETTINGS, ToolCallRepairer } from '../../src/proxy/repair/tool-call-repair.js'
import { createAutoRouter } from '../../src/proxy/scheduler/auto-router.js'
import { createScheduler, DEFAULT_SCHEDULER_SETTINGS } from '../../src/proxy/scheduler/scheduler.js'
import { createVeloServer } from '../../src/proxy/server.js'
import { modelCapacity, Upstream } from '../../src/proxy/upstreams.js'

describe('config sections of the optimizing stages', () => {
  const config = configSchema.parse({})

  it('has the same defaults as the modules, and the sections wire straight into their constructors', () => {
    expect(config.scheduler).toMatchObject(DEFAULT_SCHEDULER_SETTINGS)
    expect(config.cache).toMatchObject(DEFAULT_CACHE_SETTINGS)
    expect(config.toolCalls).toEqual(DEFAULT_TOOL_CALL_SETTINGS)
    expect(createScheduler(config.scheduler).snapshot('m').capacity).toBe(4)
    expect(createResponseCache(config.cache).stats().redis).toBe('off')
    expect(new ToolCallRepairer(config.toolCalls).settings.retries).toBe(1)
    expect(createAutoRouter(config.scheduler.auto).alias).toBe('auto')
  })

  it('reads durations and rules as a person writes them', () => {
    const parsed = configSchema.parse({
      scheduler: {
        queueTimeout: '5s',
        affinity: { maxWait: '2m' },
        weights: { ci: 0.5 },
        auto: { rules: [{ model: 'small', maxPromptChars: 2000, tools: false }], default: 'large' },
      },
      toolCalls: { enforce: { models: ['velo-tiny'], maxStringLength: 64 } },
      cache: {
        semantic: { enabled: true, models: ['qwen'] },
        exact: { nondeterministicRoutes: ['/v1/embeddings'] },
      },
    })
    expect(parsed.scheduler.queueTimeout).toBe(5000)
    expect(parsed.scheduler.affinity.maxWait).toBe(120_000)
    expect(createAutoRouter(parsed.scheduler.auto).route({ promptChars: 10, hasTools: false }).model).toBe(
      'small',
    )
    expect(new ToolCallRepairer(parsed.toolCalls).enforces('velo-tiny')).toBe(true)
  })

  it('names the field and the expectation for bad values', () => {
    const bad = configSchema.safeParse({ scheduler: { maxQueue: -1 }, toolCalls: { onInvalid: 'ignore' } })
    expect(bad.success).toBe(false)
    const paths = bad.error?.issues.map((issue) => issue.path.join('.'))
    expect(paths).toEqual(expect.arrayContaining(['scheduler.maxQueue', 'toolCalls.onInvalid']))
  })
})

describe("a model's parallel capacity (admission limit)", () => {
  const made: Upstream[] = []
  const upstream = (config: { kind?: 'ollama' | 'openai'; parallel?: number }, slots?: number): Upstream => {
    const one = new Upstream({ url: `http://127.0.0.1:${11000 + made.length}`, ...config })
    one.slots = slots
    made.push(one)
    return one
  }
  afterAll(async () => {
    await Promise.all(made.map((one) => one.close()))
  })

  it('reads upstreams[].parallel like OLLAMA_NUM_PARALLEL, a profile only where the upstream does not say', () => {
    expect(
      configSchema.parse({ upstreams: [{ url: 'http://h:11434', parallel: 3 }] }).upstreams[0]?.parallel,
    ).toBe(3)
    expect(configSchema.safeParse({ upstreams: [{ url: 'http://h:11434', parallel: 0 }] }).success).toBe(
      false,
    )
    expect(modelCapacity([upstream({ kind: 'ollama', parallel: 3 })])).toEqual({ slots: 3, pinSlots: false })
    expect(modelCapacity([upstream({ kind: 'ollama' })])).toBeUndefined()
    expect(modelCapacity([upstream({ kind: 'ollama' })], 6)).toEqual({ slots: 6, pinSlots: false })
    // The configured value is what the server runs with; a profile only says what it was tuned for.
    expect(modelCapacity([upstream({ kind: 'ollama', parallel: 2 })], 6)?.slots).toBe(2)
    // Several upstreams: the sum.
    expect(
      modelCapacity([upstream({ kind: 'ollama', parallel: 2 }), upstream({ kind: 'ollama', parallel: 1 })]),
    ).toEqual({ slots: 3, pinSlots: false })
  })

  it('admits as many as it has connections to an OpenAI-compatible server that reports no slots', () => {
    // vLLM, LM Studio or a hosted API batch requests themselves: a queue in velo only adds latency.
    const generic = upstream({ kind: 'openai' })
    expect(generic.slots).toBeUndefined()
    expect(modelCapacity([generic])).toEqual({ slots: generic.connections, pinSlots: false })
    expect(generic.connections).toBe(256)
    // Its configured parallel still wins, and Ollama beside it adds nothing it does not say.
    expect(modelCapacity([upstream({ kind: 'openai', parallel: 3 })])?.slots).toBe(3)
    expect(modelCapacity([upstream({ kind: 'openai' }), upstream({ kind: 'ollama' })])?.slots).toBe(256)
  })

  it('pins slots only on a single llama-server whose slots cover the capacity', () => {
    expect(modelCapacity([upstream({ kind: 'openai' }, 4)])).toEqual({ slots: 4, pinSlots: true })
    expect(modelCapacity([upstream({ kind: 'openai', parallel: 2 }, 4)])).toEqual({
      slots: 2,
      pinSlots: true,
    })
    expect(modelCapacity([upstream({ kind: 'openai', parallel: 8 }, 4)])).toEqual({
      slots: 8,
      pinSlots: false,
    })
    expect(modelCapacity([upstream({ kind: 'openai' }, 2), upstream({ kind: 'openai' }, 2)])).toEqual({
      slots: 4,
      pinSlots: false,
    })
  })
})

describe('reloading scheduler.weights', () => {
  it('changes the fair shares of the running scheduler, not only the report', async () => {
    const config = parseConfig({})
    const scheduler = createScheduler({ ...config.scheduler, maxQueue: 100 })
    const server = createVeloServer({ config, scheduler, autoOllama: false, refreshIntervalMs: 0 })
    const result = await server.reload(parseConfig({ scheduler: { weights: { a: 3 } } }))
    expect(result.applied).toContain('scheduler.weights')
    scheduler.setCapacity('m', 1)
    const signal = new AbortController().signal
    const ask = (client: string) =>
      scheduler.acquire({ model: 'm', priority: 0, client, promptChars: 1, signal })
    const running = await ask('x')
    const order: string[] = []
    const pending = [...'aaaabbbb'].map((client) =>
      ask(client).then((lease: AdmissionLease) => {
        order.push(client)
        lease.release()
      }),
    )
    running.release()
    await Promise.all(pending)
    // With equal weights this would be abababab.
    expect(order.join('')).toBe('abaaabbb')
  })
})
