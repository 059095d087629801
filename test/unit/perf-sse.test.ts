import { describe, expect, it } from 'vitest'
import { chatChunkInfo, chunkStamp, eventData, SseSplitter } from '../../bench/lib/sse.js'
import { ChatStreamReader, StampedStreamReader } from '../../bench/lib/stream-readers.js'

const bytes = (text: string) => new TextEncoder().encode(text)

describe('perf SSE parsing', () => {
  it('splits events across arbitrary chunk boundaries', () => {
    const splitter = new SseSplitter()
    expect(splitter.push('data: a\n')).toEqual([])
    expect(splitter.push('\ndata: b\n\nda')).toEqual(['data: a', 'data: b'])
    expect(splitter.push('ta: c\r\n\r\n')).toEqual(['data: c'])
  })

  it('joins multi-line data and ignores other fields', () => {
    expect(eventData('event: x\ndata: one\ndata:two')).toBe('one\ntwo')
    expect(eventData(': comment')).toBeUndefined()
  })

  it('reads the upstream time stamp out of a chunk', () => {
    expect(chunkStamp('data: {"delta":{"content":"~123456789~"}}')).toBe(123456789n)
    expect(chunkStamp('data: {"delta":{"content":"hello"}}')).toBeUndefined()
    expect(chunkStamp('data: {"delta":{"content":"~12a~"}}')).toBeUndefined()
  })

  it('reads generated text and usage out of chat chunks', () => {
    expect(chatChunkInfo('{"choices":[{"delta":{"content":"hey"}}]}')).toEqual({
      text: 3,
      completionTokens: undefined,
      done: false,
    })
    expect(chatChunkInfo('{"choices":[],"usage":{"completion_tokens":64}}')?.completionTokens).toBe(64)
    expect(chatChunkInfo('[DONE]')?.done).toBe(true)
    expect(chatChunkInfo('not json')).toBeUndefined()
  })

  it('measures first byte, one-way latency and gaps of a stamped stream', () => {
    const first: number[] = []
    const chunks: [number | undefined, number | undefined][] = []
    const reader = new StampedStreamReader(1_000_000n, {
      firstByte: (ms) => first.push(ms),
      chunk: (oneWay, gap) => chunks.push([oneWay, gap]),
    })
    reader.push(bytes('data: {"content":"~2000000~"}\n\ndata: {"con'), 3_000_000n)
    reader.push(bytes('tent":"~3500000~"}\n\ndata: [DONE]\n\n'), 4_000_000n)
    expect(first).toEqual([2])
    expect(chunks).toEqual([
      [1, undefined],
      [0.5, 1],
      [undefined, 0],
    ])
    expect(reader.finish()).toBe(0)
  })

  it('takes time to first text and tokens from a chat stream, usage over chunk count', () => {
    const text: number[] = []
    const reader = new ChatStreamReader(0n, {
      firstByte: () => {},
      firstText: (ms) => text.push(ms),
      chunk: () => {},
    })
    reader.push(bytes('data: {"choices":[{"delta":{"role":"assistant","content":null}}]}\n\n'), 1_000_000n)
    reader.push(bytes('data: {"choices":[{"delta":{"content":"Hi"}}]}\n\n'), 5_000_000n)
    reader.push(bytes('data: {"choices":[{"delta":{"content":" there"}}]}\n\n'), 6_000_000n)
    expect(text).toEqual([5])
    expect(reader.finish()).toBe(2)
    reader.push(bytes('data: {"choices":[],"usage":{"completion_tokens":7}}\n\ndata: [DONE]\n\n'), 7_000_000n)
    expect(reader.finish()).toBe(7)
  })
})
