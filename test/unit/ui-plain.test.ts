import { PassThrough } from 'node:stream'
import { afterEach, describe, expect, it } from 'vitest'
import { runPlainStatus, summaryLine } from '../../src/ui/plain-status.js'
import { createRemote, type Remote } from '../../src/ui/remote.js'
import { createPollingSource } from '../../src/ui/source.js'
import { busyStatus, modelFixture, statusFixture } from './ui-fixtures.js'

const NOW = new Date(2025, 0, 1, 11, 2, 3)

let remotes: Remote[] = []
afterEach(async () => {
  for (const remote of remotes) await remote.close()
  remotes = []
})

function collect() {
  const stream = new PassThrough()
  let text = ''
  stream.on('data', (chunk: Buffer) => {
    text += chunk.toString()
  })
  return { stream, lines: () => text.split('\n').filter(Boolean) }
}

describe('summaryLine', () => {
  it('sums up a busy server in one line', () => {
    expect(summaryLine(busyStatus(), undefined, NOW)).toBe(
      '11:02:03 up 1h02m req/s 3.2 tok/s 154 busy 4/8 queue 7 cache 42% errors 3 | ' +
        'velo-tiny ready 4/4 q7, qwen2.5:7b loading 0/4, gpu-box-model failed',
    )
  })

  it('marks paused models and an empty cache', () => {
    const status = statusFixture({
      cache: { hits: 0, semanticHits: 0, misses: 0, hitRate: 0, entries: 0, bytes: 0 },
      models: [modelFixture({ paused: true })],
    })
    expect(summaryLine(status, undefined, NOW)).toContain('cache - errors 0 | velo-tiny paused 0/4')
  })

  it('says when velo is unreachable', () => {
    const connection = {
      state: 'disconnected' as const,
      target: 'http://127.0.0.1:8000',
      error: 'connect ECONNREFUSED 127.0.0.1:8000',
      attempts: 2,
    }
    expect(summaryLine(busyStatus(), connection, NOW)).toBe(
      '11:02:03 disconnected from http://127.0.0.1:8000: connect ECONNREFUSED 127.0.0.1:8000 (attempt 2)',
    )
  })
})

describe('runPlainStatus', () => {
  it('prints one line per interval and stops after count', async () => {
    const source = createPollingSource(() => busyStatus())
    const out = collect()
    await runPlainStatus({ source, stream: out.stream, intervalMs: 20, count: 3 })
    expect(out.lines()).toHaveLength(3)
    for (const line of out.lines())
      expect(line).toMatch(/^\d\d:\d\d:\d\d up 1h02m req\/s 3\.2 .* \| velo-tiny ready/)
    source.close?.()
  })

  it('stops when its signal aborts', async () => {
    const source = createPollingSource(() => busyStatus())
    const out = collect()
    const stop = new AbortController()
    const running = runPlainStatus({ source, stream: out.stream, intervalMs: 10, signal: stop.signal })
    while (out.lines().length < 2) await new Promise((resolve) => setTimeout(resolve, 5))
    stop.abort()
    await running
    const printed = out.lines().length
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(out.lines()).toHaveLength(printed)
    source.close?.()
  })

  it('prints why there are no figures when velo cannot be reached', async () => {
    const remote = createRemote({ url: 'http://127.0.0.1:1', minBackoffMs: 10 })
    remotes.push(remote)
    const out = collect()
    await runPlainStatus({ source: remote.source, stream: out.stream, intervalMs: 10, count: 1 })
    expect(out.lines()[0]).toMatch(/disconnected from http:\/\/127\.0\.0\.1:1: .*ECONNREFUSED/)
  })
})
