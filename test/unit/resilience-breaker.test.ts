import { afterEach, describe, expect, it } from 'vitest'
import { pickUpstream } from '../../src/proxy/resilience/balance.js'
import { CircuitBreaker } from '../../src/proxy/resilience/breaker.js'
import { Upstream } from '../../src/proxy/upstreams.js'

const settings = { failures: 3, cooldownMs: 1000 }

describe('the circuit breaker', () => {
  it('stays closed below the failure threshold, and a success resets the count', () => {
    const breaker = new CircuitBreaker()
    breaker.failure(0, settings)
    breaker.failure(0, settings)
    expect(breaker.state(0, settings)).toBe('closed')
    expect(breaker.acquire(0, settings)).toBe('pass')
    breaker.success()
    expect(breaker.failures).toBe(0)
    breaker.failure(0, settings)
    breaker.failure(0, settings)
    expect(breaker.state(0, settings)).toBe('closed')
  })

  it('opens after N consecutive failures and rejects until the cooldown has passed', () => {
    const breaker = new CircuitBreaker()
    for (let i = 0; i < 3; i++) breaker.failure(100, settings)
    expect(breaker.state(100, settings)).toBe('open')
    expect(breaker.opened).toBe(1)
    expect(breaker.allows(500, settings)).toBe(false)
    expect(breaker.acquire(500, settings)).toBe('reject')
    expect(breaker.retryAfterMs(500, settings)).toBe(600)
    expect(breaker.state(1100, settings)).toBe('half-open')
  })

  it('lets exactly one probe through when half-open; its success closes the breaker', () => {
    const breaker = new CircuitBreaker()
    for (let i = 0; i < 3; i++) breaker.failure(0, settings)
    expect(breaker.acquire(1000, settings)).toBe('probe')
    expect(breaker.allows(1000, settings)).toBe(false)
    expect(breaker.acquire(1000, settings)).toBe('reject')
    breaker.success()
    expect(breaker.state(1000, settings)).toBe('closed')
    expect(breaker.acquire(1000, settings)).toBe('pass')
  })

  it('opens again for a whole cooldown when the probe fails', () => {
    const breaker = new CircuitBreaker()
    for (let i = 0; i < 3; i++) breaker.failure(0, settings)
    expect(breaker.acquire(1500, settings)).toBe('probe')
    breaker.failure(1600, settings)
    expect(breaker.state(1600, settings)).toBe('open')
    expect(breaker.opened).toBe(2)
    expect(breaker.acquire(2500, settings)).toBe('reject')
    expect(breaker.acquire(2600, settings)).toBe('probe')
  })

  it('lets another probe go when the first was abandoned (its client left)', () => {
    const breaker = new CircuitBreaker()
    for (let i = 0; i < 3; i++) breaker.failure(0, settings)
    expect(breaker.acquire(1000, settings)).toBe('probe')
    breaker.abandon()
    expect(breaker.acquire(1000, settings)).toBe('probe')
  })
})

describe('picking an upstream (least outstanding requests)', () => {
  const made: Upstream[] = []
  const upstream = (name: string): Upstream => {
    const created = new Upstream({ url: `http://127.0.0.1:9/${name}`, name, kind: 'openai' })
    created.healthy = true
    made.push(created)
    return created
  }
  afterEach(async () => {
    await Promise.all(made.splice(0).map((created) => created.close()))
  })

  it('takes the one with the fewest requests in flight, the first on a tie', () => {
    const [a, b, c] = [upstream('a'), upstream('b'), upstream('c')]
    expect(pickUpstream([a, b, c], undefined, 0, settings)).toBe(a)
    a.outstanding = 2
    b.outstanding = 1
    c.outstanding = 1
    expect(pickUpstream([a, b, c], undefined, 0, settings)).toBe(b)
  })

  it('skips upstreams whose breaker is open and those already tried for the request', () => {
    const [a, b] = [upstream('a'), upstream('b')]
    for (let i = 0; i < 3; i++) a.breaker.failure(0, settings)
    b.outstanding = 10
    expect(pickUpstream([a, b], undefined, 10, settings)).toBe(b)
    expect(pickUpstream([a, b], [b], 10, settings)).toBeUndefined()
  })

  it('sends an unhealthy upstream work only when no healthy one is left', () => {
    const [a, b] = [upstream('a'), upstream('b')]
    a.healthy = false
    b.outstanding = 5
    expect(pickUpstream([a, b], undefined, 0, settings)).toBe(b)
    expect(pickUpstream([a, b], [b], 0, settings)).toBe(a)
  })

  it('gives a cooled-down upstream the probe on a tie, even one marked unhealthy', () => {
    const [a, b] = [upstream('a'), upstream('b')]
    for (let i = 0; i < 3; i++) b.breaker.failure(0, settings)
    b.healthy = false
    expect(pickUpstream([a, b], undefined, 500, settings)).toBe(a)
    expect(pickUpstream([a, b], undefined, 1000, settings)).toBe(b)
  })
})
