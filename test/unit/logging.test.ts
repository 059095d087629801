import { Writable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { createLogger } from '../../src/proxy/logging.js'

/** A destination that keeps what is written, and says when the first line has arrived. */
function sink(): { text: () => string; firstLine: Promise<string>; stream: Writable } {
  let text = ''
  let resolveLine: (line: string) => void = () => {}
  const firstLine = new Promise<string>((resolve) => {
    resolveLine = resolve
  })
  const stream = new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      text += chunk.toString()
      const end = text.indexOf('\n')
      if (end >= 0) resolveLine(text.slice(0, end))
      callback()
    },
  })
  return { text: () => text, firstLine, stream }
}

const REQUEST_LINE = {
  id: 'req-42',
  route: '/v1/chat/completions',
  model: 'velo-tiny',
  status: 200,
  durationMs: 17,
}

describe('createLogger', () => {
  it('writes readable single lines, not JSON, with --log-format pretty', async () => {
    const out = sink()
    const logger = createLogger({ format: 'pretty', destination: out.stream })
    logger.info(REQUEST_LINE, 'request')
    // pino-pretty writes through a transform stream: the line arrives a tick later.
    const line = await out.firstLine
    expect(() => JSON.parse(line)).toThrow()
    expect(line).toContain('INFO')
    expect(line).toContain('request')
    expect(line).toContain('req-42')
    expect(line).toContain('velo-tiny')
    expect(line).toContain('/v1/chat/completions')
    expect(line).toMatch(/status"?:\s*200/)
    // A destination stream is not a terminal: no colour codes for a file or pipe.
    expect(line).not.toContain('\u001b[')
    expect(out.text().trimEnd().split('\n')).toHaveLength(1)
  })

  it('writes one JSON object per line with --log-format json', async () => {
    const out = sink()
    const logger = createLogger({ format: 'json', destination: out.stream })
    logger.info(REQUEST_LINE, 'request')
    const parsed = JSON.parse(await out.firstLine) as Record<string, unknown>
    expect(parsed).toMatchObject({ ...REQUEST_LINE, msg: 'request', level: 30 })
    expect(parsed['time']).toMatch(/^\d{4}-\d\d-\d\dT/)
  })

  it('drops lines below its level', async () => {
    const out = sink()
    const logger = createLogger({ format: 'pretty', destination: out.stream, level: 'warn' })
    logger.info(REQUEST_LINE, 'quiet')
    logger.warn({ model: 'velo-tiny' }, 'loud')
    const line = await out.firstLine
    expect(line).toContain('loud')
    expect(out.text()).not.toContain('quiet')
  })
})
