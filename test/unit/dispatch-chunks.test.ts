import { describe, expect, it } from 'vitest'
import { ChunkQueue } from '../../src/proxy/resilience/dispatch.js'

/** The controller undici hands a handler, recording what the queue asked of it. */
function controller() {
  const calls: string[] = []
  return {
    calls,
    value: {
      pause: () => calls.push('pause'),
      resume: () => calls.push('resume'),
      abort: (reason: Error) => calls.push(`abort: ${reason.message}`),
      aborted: false,
      paused: false,
      reason: null,
    },
  }
}

const bytes = (n: number, fill = 'x') => Buffer.alloc(n, fill)

describe('ChunkQueue (a streamed answer without a Readable)', () => {
  it('hands chunks over in order, to a reader that waits and to one that comes late', async () => {
    const queue = new ChunkQueue()
    const early = queue.next()
    queue.push(bytes(1, 'a'))
    queue.push(bytes(1, 'b'))
    queue.push(bytes(1, 'c'))
    queue.end()
    expect((await early).value?.toString()).toBe('a')
    const rest: string[] = []
    for await (const chunk of queue) rest.push(chunk.toString())
    expect(rest).toEqual(['b', 'c'])
    expect(queue.finished).toBe(true)
  })

  it('delivers what arrived before a failure, then throws it', async () => {
    const queue = new ChunkQueue()
    queue.push(bytes(1, 'a'))
    queue.fail(Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' }))
    const seen: string[] = []
    const failure = await (async () => {
      for await (const chunk of queue) seen.push(chunk.toString())
    })().catch((error: unknown) => error)
    expect(seen).toEqual(['a'])
    expect((failure as { code?: string }).code).toBe('UND_ERR_SOCKET')
  })

  it('pauses the socket past 64 KiB queued and resumes it once the reader is under 16 KiB', async () => {
    const queue = new ChunkQueue()
    const { calls, value } = controller()
    queue.controller = value
    for (let i = 0; i < 4; i++) queue.push(bytes(16 * 1024))
    expect(calls).toEqual(['pause'])
    await queue.next()
    await queue.next()
    expect(calls).toEqual(['pause'])
    await queue.next()
    expect(calls).toEqual(['pause', 'resume'])
  })

  it('aborts the request when the reader leaves before the end, and not after it', async () => {
    const left = new ChunkQueue()
    const first = controller()
    left.controller = first.value
    left.push(bytes(1))
    for await (const _chunk of left) break
    expect(first.calls).toEqual(['abort: the reader left before the end of the answer'])
    expect(left.finished).toBe(true)

    const read = new ChunkQueue()
    const second = controller()
    read.controller = second.value
    read.push(bytes(1))
    read.end()
    for await (const _chunk of read) {
      // read to the end
    }
    await read.return()
    expect(second.calls).toEqual([])
  })
})
