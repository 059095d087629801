import { afterAll, describe, expect, it } from 'vitest'
import { VeloError } from '../../src/core/errors.js'
import { pickUpstream } from '../../src/proxy/resilience/balance.js'
import { createAutoRouter, describePrompt } from '../../src/proxy/scheduler/auto-router.js'
import { pickByPrefix, prefixKeys, SlotPicker } from '../../src/proxy/scheduler/prefix-affinity.js'
import { createScheduler } from '../../src/proxy/scheduler/scheduler.js'
import { Upstream } from '../../src/proxy/upstreams.js'

const system = { role: 'system', content: 'You are a careful assistant. '.repeat(40) }

function chat(user: string, extra: object[] = [], sys = system) {
  return { model: 'm', messages: [sys, { role: 'user', content: user }, ...extra] }
}

describe('prefixKeys', () => {
  it('gives a conversation key and a system key; later turns of a conversation keep both', () => {
    const first = prefixKeys(chat('Plan a trip to Rome'))
    const later = prefixKeys(
      chat('Plan a trip to Rome', [
        { role: 'assistant', content: 'Sure, when?' },
        { role: 'user', content: 'In May' },
      ]),
    )
    expect(first).toHaveLength(2)
    expect(later).toEqual(first)
  })

  it('shares only the system key between different conversations with one system prompt', () => {
    const a = prefixKeys(chat('Plan a trip to Rome'))
    const b = prefixKeys(chat('Explain monads'))
    expect(a[0]).not.toBe(b[0])
    expect(a[1]).toBe(b[1])
    const other = prefixKeys(chat('Plan a trip to Rome', [], { role: 'system', content: 'Another prompt' }))
    expect(other[1]).not.toBe(a[1])
  })

  it('keys raw prompts by their head, and gives nothing for bodies without a prompt', () => {
    const long = 'x'.repeat(3000)
    expect(prefixKeys({ model: 'm', prompt: `${long}a` })).toEqual(
      prefixKeys({ model: 'm', prompt: `${long}b` }),
    )
    expect(prefixKeys({ model: 'm', prompt: 'short' })).toHaveLength(1)
    expect(prefixKeys({ model: 'm', input: 'embed me' })).toEqual([])
    expect(prefixKeys('not an object')).toEqual([])
  })
})

describe('SlotPicker', () => {
  it('puts a repeated prefix on the slot that last ran it', () => {
    const picker = new SlotPicker(4)
    const keys = prefixKeys(chat('Plan a trip to Rome'))
    const others = ['q1', 'q2', 'q3'].map((q) => prefixKeys(chat(q, [], { role: 'system', content: q })))
    const first = picker.pick(keys)
    expect(first).toBeDefined()
    if (first === undefined) return
    picker.release(first)
    for (const other of others) {
      const slot = picker.pick(other)
      if (slot !== undefined) picker.release(slot)
    }
    expect(picker.pick(keys)).toBe(first)
  })

  it('spreads concurrent different prefixes over free slots and never hands out a busy slot', () => {
    const picker = new SlotPicker(3)
    const slots = ['a', 'b', 'c'].map((q) =>
      picker.pick(prefixKeys(chat(q, [], { role: 'system', content: q }))),
    )
    expect(new Set(slots).size).toBe(3)
    expect(picker.pick(['anything'])).toBeUndefined()
  })

  it('takes another free slot when the home slot is busy, and that slot becomes the new home', () => {
    const picker = new SlotPicker(2)
    const keys = prefixKeys(chat('Plan a trip to Rome'))
    const home = picker.pick(keys)
    const second = picker.pick(keys)
    expect(second).not.toBe(home)
    expect(second).toBeDefined()
    if (home !== undefined) picker.release(home)
    if (second !== undefined) picker.release(second)
    expect(picker.pick(keys)).toBe(second)
  })

  it('sends a new conversation with a known system prompt to the slot holding that system prompt', () => {
    const picker = new SlotPicker(4)
    for (const q of ['x', 'y']) {
      const s = picker.pick(prefixKeys(chat(q, [], { role: 'system', content: `other ${q}` })))
      if (s !== undefined) picker.release(s)
    }
    const first = picker.pick(prefixKeys(chat('Plan a trip to Rome')))
    if (first !== undefined) picker.release(first)
    expect(picker.pick(prefixKeys(chat('A different question')))).toBe(first)
  })
})

describe('scheduler leases with prefix affinity', () => {
  it('carries a slot only for upstreams that take id_slot, and the same prefix gets the same slot', async () => {
    const scheduler = createScheduler()
    const keys = prefixKeys(chat('Plan a trip to Rome'))
    const base = {
      client: 'c',
      priority: 0,
      promptChars: 10,
      signal: new AbortController().signal,
      prefixKeys: () => keys,
    }
    scheduler.setCapacity('plain', 2)
    const plain = await scheduler.acquire({ ...base, model: 'plain' })
    expect(plain.slot).toBeUndefined()
    plain.release()

    scheduler.setCapacity('llama', 4, { slots: true })
    const first = await scheduler.acquire({ ...base, model: 'llama' })
    expect(first.slot).toBeGreaterThanOrEqual(0)
    expect(first.slot).toBeLessThan(4)
    first.release()
    for (const q of ['q1', 'q2']) {
      const other = await scheduler.acquire({
        ...base,
        model: 'llama',
        prefixKeys: () => prefixKeys(chat(q, [], { role: 'system', content: q })),
      })
      other.release()
    }
    const again = await scheduler.acquire({ ...base, model: 'llama' })
    expect(again.slot).toBe(first.slot)
    again.release()
  })
})

describe('pickByPrefix (upstream affinity)', () => {
  it('maps a key to the same upstream, and removing another upstream does not move it', () => {
    const upstreams = ['http://a', 'http://b', 'http://c']
    const keys = Array.from({ length: 50 }, (_, i) => `key-${i}`)
    const picks = keys.map((key) => pickByPrefix(key, upstreams))
    expect(keys.map((key) => pickByPrefix(key, upstreams))).toEqual(picks)
    expect(new Set(picks).size).toBe(3)
    const without = keys.map((key) => pickByPrefix(key, ['http://a', 'http://b']))
    keys.forEach((_, i) => {
      if (picks[i] !== 'http://c') expect(without[i]).toBe(picks[i])
    })
  })
})

describe('the home upstream of a conversation (prefix affinity over several upstreams)', () => {
  const settings = { failures: 1, cooldownMs: 1000 }
  const made: Upstream[] = []
  const upstream = (name: string, parallel: number): Upstream => {
    const created = new Upstream({ url: `http://127.0.0.1:9/${name}`, name, kind: 'openai', parallel })
    created.healthy = true
    made.push(created)
    return created
  }
  afterAll(async () => {
    await Promise.all(made.map((created) => created.close()))
  })

  it('is taken while it has a free slot, even when another is less loaded', () => {
    const [a, b] = [upstream('a', 2), upstream('b', 2)]
    b.outstanding = 1
    expect(pickUpstream([a, b], undefined, 0, settings, b)).toBe(b)
    // Busy (every slot in flight): the balance decides, and the conversation moves rather than waits.
    b.outstanding = 2
    expect(pickUpstream([a, b], undefined, 0, settings, b)).toBe(a)
  })

  it('is passed over when it failed this request, is down, or its breaker is open', () => {
    const [a, b] = [upstream('c', 2), upstream('d', 2)]
    expect(pickUpstream([a, b], [b], 0, settings, b)).toBe(a)
    b.healthy = false
    expect(pickUpstream([a, b], undefined, 0, settings, b)).toBe(a)
    b.healthy = true
    b.breaker.failure(0, settings)
    expect(pickUpstream([a, b], undefined, 1, settings, b)).toBe(a)
  })
})

describe('auto router', () => {
  const router = createAutoRouter({
    alias: 'auto',
    rules: [
      { model: 'large', tools: true },
      { model: 'small', maxPromptChars: 2000 },
    ],
    default: 'large',
  })

  it('routes by tools and prompt length, first matching rule wins', () => {
    expect(router.route({ promptChars: 100, hasTools: true })).toEqual({ model: 'large', rule: 0 })
    expect(router.route({ promptChars: 100, hasTools: false })).toEqual({ model: 'small', rule: 1 })
    expect(router.route({ promptChars: 5000, hasTools: false })).toEqual({ model: 'large', rule: undefined })
  })

  it('describes OpenAI and Ollama bodies', () => {
    expect(
      describePrompt({
        messages: [
          { role: 'user', content: 'hello' },
          { role: 'user', content: [{ type: 'text', text: 'abc' }] },
        ],
        tools: [{ type: 'function', function: { name: 'f' } }],
      }),
    ).toEqual({ promptChars: 8, hasTools: true })
    expect(describePrompt({ prompt: 'four', system: 'ab' })).toEqual({ promptChars: 6, hasTools: false })
  })

  it('answers a clear 400 when nothing matches and there is no default', () => {
    const strict = createAutoRouter({ alias: 'auto', rules: [{ model: 'small', maxPromptChars: 10 }] })
    expect(() => strict.route({ promptChars: 50, hasTools: false })).toThrow(VeloError)
    expect(() => strict.route({ promptChars: 50, hasTools: false })).toThrow(/scheduler.auto/)
  })
})
