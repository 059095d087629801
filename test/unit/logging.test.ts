import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { createLogger, logInfo } from '../../src/proxy/logging.js'

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

describe('request lines and the batched file destination', () => {
  it("logInfo writes the line pino writes, field for field, in pino's order", async () => {
    const out = sink()
    const logger = createLogger({ format: 'json', destination: out.stream })
    const fields = { ...REQUEST_LINE, upstream: undefined, note: 'quote " and é' }
    logInfo(logger, fields, 'request')
    logger.info(fields, 'request')
    const [fast, slow] = out
      .text()
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>)
    expect(Object.keys(fast ?? {})).toEqual(Object.keys(slow ?? {}))
    expect({ ...fast, time: '' }).toEqual({ ...slow, time: '' })
    expect(fast).not.toHaveProperty('upstream')
  })

  it('logInfo honours the level, and falls back to pino for other loggers', async () => {
    const out = sink()
    logInfo(createLogger({ format: 'json', destination: out.stream, level: 'warn' }), REQUEST_LINE, 'request')
    const pretty = sink()
    logInfo(createLogger({ format: 'pretty', destination: pretty.stream }), REQUEST_LINE, 'request')
    expect(await pretty.firstLine).toContain('req-42')
    expect(out.text()).toBe('')
  })

  it('writes every line to a file, in order, within the flush interval; a long line whole', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'velo-log-'))
    const file = join(dir, 'nested', 'serve.log')
    const logger = createLogger({ format: 'json', destination: file })
    const long = 'x'.repeat(100_000)
    for (let i = 0; i < 500; i++) logInfo(logger, { i }, 'request')
    logger.info({ long }, 'long')
    logInfo(logger, { i: 500 }, 'request')
    let lines: string[] = []
    for (let tries = 0; tries < 50 && lines.length < 502; tries++) {
      await new Promise((resolve) => setTimeout(resolve, 50))
      lines = (await readFile(file, 'utf8')).trimEnd().split('\n')
    }
    expect(lines).toHaveLength(502)
    const parsed = lines.map((line) => JSON.parse(line) as { i?: number; long?: string })
    expect(parsed.slice(0, 500).map((line) => line.i)).toEqual([...Array(500).keys()])
    expect(parsed[500]?.long).toBe(long)
    expect(parsed[501]?.i).toBe(500)
    await rm(dir, { recursive: true, force: true })
  })
})
