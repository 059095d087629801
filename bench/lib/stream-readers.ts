import { type ChatChunkInfo, chatChunkInfo, chunkStamp, eventData, SseSplitter } from './sse.js'

/** Reads one streamed response as its bytes arrive; `at` is process.hrtime.bigint() on arrival. */
export interface StreamReader {
  push(chunk: Uint8Array, at: bigint): void
  /** The stream ended: completion tokens it produced (0 when the stream does not count them). */
  finish(): number
}

const ms = (from: bigint, to: bigint): number => Number(to - from) / 1e6

export interface StampedCallbacks {
  firstByte(ms: number): void
  /** One event: how long since the upstream wrote it (when stamped) and since the previous event. */
  chunk(oneWayMs: number | undefined, gapMs: number | undefined): void
}

/** The bench upstream's stream: every chunk carries the monotonic time it was written. */
export class StampedStreamReader implements StreamReader {
  private readonly decoder = new TextDecoder()
  private readonly splitter = new SseSplitter()
  private last: bigint | undefined
  private first = true

  constructor(
    private readonly start: bigint,
    private readonly on: StampedCallbacks,
  ) {}

  push(chunk: Uint8Array, at: bigint): void {
    if (this.first) {
      this.first = false
      this.on.firstByte(ms(this.start, at))
    }
    for (const event of this.splitter.push(this.decoder.decode(chunk, { stream: true }))) {
      const stamp = chunkStamp(event)
      const gap = this.last === undefined ? undefined : ms(this.last, at)
      this.last = at
      this.on.chunk(stamp === undefined ? undefined : ms(stamp, at), gap)
    }
  }

  finish(): number {
    return 0
  }
}

export interface ChatCallbacks {
  firstByte(ms: number): void
  /** The first event with generated text (time to first token). */
  firstText(ms: number): void
  chunk(gapMs: number | undefined): void
}

/** An OpenAI chat stream from a real engine: time to first text, gaps and completion tokens. */
export class ChatStreamReader implements StreamReader {
  private readonly decoder = new TextDecoder()
  private readonly splitter = new SseSplitter()
  private last: bigint | undefined
  private first = true
  private sawText = false
  private textChunks = 0
  private usageTokens: number | undefined

  constructor(
    private readonly start: bigint,
    private readonly on: ChatCallbacks,
  ) {}

  push(chunk: Uint8Array, at: bigint): void {
    if (this.first) {
      this.first = false
      this.on.firstByte(ms(this.start, at))
    }
    for (const event of this.splitter.push(this.decoder.decode(chunk, { stream: true }))) {
      const data = eventData(event)
      const info: ChatChunkInfo | undefined = data === undefined ? undefined : chatChunkInfo(data)
      if (!info || info.done) continue
      if (info.completionTokens !== undefined) this.usageTokens = info.completionTokens
      if (info.text === 0) continue
      this.textChunks++
      if (!this.sawText) {
        this.sawText = true
        this.on.firstText(ms(this.start, at))
      }
      this.on.chunk(this.last === undefined ? undefined : ms(this.last, at))
      this.last = at
    }
  }

  finish(): number {
    return this.usageTokens ?? this.textChunks
  }
}
