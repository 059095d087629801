import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { mayHoldNull, withoutNullFields } from '../../src/proxy/translate/index.js'

const bytes = (value: unknown): Buffer => Buffer.from(JSON.stringify(value))

describe('the null pre-check before forwarding to an OpenAI-compatible upstream', () => {
  it('finds the null of a "not set" field, and of a string that only spells it', () => {
    expect(mayHoldNull(bytes({ model: 'm', messages: [{ role: 'user', content: 'hi', name: null }] }))).toBe(
      true,
    )
    expect(mayHoldNull(bytes({ model: 'm', messages: [{ role: 'user', content: 'null and void' }] }))).toBe(
      true,
    )
    expect(
      mayHoldNull(bytes({ model: 'm', messages: [{ role: 'user', content: 'hi' }], temperature: 0.7 })),
    ).toBe(false)
  })

  it('never skips a body that has nulls to drop', () => {
    const messages = fc.array(
      fc.record(
        {
          role: fc.constantFrom('system', 'user', 'assistant', 'tool'),
          content: fc.option(fc.string(), { nil: null }),
          name: fc.option(fc.string(), { nil: null }),
          tool_call_id: fc.option(fc.string(), { nil: null }),
        },
        { requiredKeys: ['role'] },
      ),
      { minLength: 1, maxLength: 4 },
    )
    const request = fc.record(
      {
        model: fc.string(),
        messages,
        temperature: fc.option(fc.double({ min: 0, max: 2, noNaN: true }), { nil: null }),
        stream_options: fc.option(fc.record({ include_usage: fc.option(fc.boolean(), { nil: null }) }), {
          nil: null,
        }),
        user: fc.option(fc.string(), { nil: null }),
      },
      { requiredKeys: ['model', 'messages'] },
    )
    fc.assert(
      fc.property(request, (body) => {
        if (withoutNullFields(body) !== undefined) expect(mayHoldNull(bytes(body))).toBe(true)
      }),
      { numRuns: 500 },
    )
  })
})
