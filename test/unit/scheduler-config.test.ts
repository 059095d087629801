import { describe, expect, it } from 'vitest'
import { configSchema } from '../../src/core/config/schema.js'
import { createResponseCache, DEFAULT_CACHE_SETTINGS } from '../../src/proxy/cache/response-cache.js'
import { DEFAULT_TOOL_CALL_SETTINGS, ToolCallRepairer } from '../../src/proxy/repair/tool-call-repair.js'
import { createAutoRouter } from '../../src/proxy/scheduler/auto-router.js'
import { createScheduler, DEFAULT_SCHEDULER_SETTINGS } from '../../src/proxy/scheduler/scheduler.js'

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
