/**
 * Splitting an SSE byte stream into events as it arrives, for the load generator. Kept apart from the
 * network code so it can be tested on plain strings.
 */

/** Accumulates text and hands back every complete event (the text before a blank line). */
export class SseSplitter {
  private pending = ''

  /** The complete events in `text` plus what was pending, in order; a partial event stays pending. */
  push(text: string): string[] {
    const all = this.pending + text.replaceAll('\r\n', '\n')
    const events: string[] = []
    let start = 0
    for (;;) {
      const end = all.indexOf('\n\n', start)
      if (end < 0) break
      if (end > start) events.push(all.slice(start, end))
      start = end + 2
    }
    this.pending = all.slice(start)
    return events
  }
}

/** The payload of an event's `data:` lines (joined by newlines, as the SSE spec says); undefined if none. */
export function eventData(event: string): string | undefined {
  let data: string | undefined
  for (const line of event.split('\n')) {
    if (!line.startsWith('data:')) continue
    const value = line.charCodeAt(5) === 32 ? line.slice(6) : line.slice(5)
    data = data === undefined ? value : `${data}\n${value}`
  }
  return data
}

/**
 * The bench upstream writes `~<ns>~` (its process.hrtime.bigint() when it wrote the chunk) as each
 * chunk's content. CLOCK_MONOTONIC is one clock for every process on the machine, so arrival time
 * minus this stamp is how long the chunk took to reach the client, whatever sat in between.
 */
export function chunkStamp(event: string): bigint | undefined {
  const at = event.indexOf('"content":"~')
  if (at < 0) return undefined
  const start = at + 12
  const end = event.indexOf('~', start)
  if (end <= start) return undefined
  const digits = event.slice(start, end)
  return /^\d+$/.test(digits) ? BigInt(digits) : undefined
}

export interface ChatChunkInfo {
  /** Characters of generated text in this chunk (content or reasoning). */
  text: number
  /** `usage.completion_tokens` when the chunk carries usage. */
  completionTokens: number | undefined
  done: boolean
}

/** What an OpenAI chat-completion stream event says about generation; undefined if it is not JSON. */
export function chatChunkInfo(data: string): ChatChunkInfo | undefined {
  if (data === '[DONE]') return { text: 0, completionTokens: undefined, done: true }
  let parsed: unknown
  try {
    parsed = JSON.parse(data)
  } catch {
    return undefined
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined
  const record = parsed as { choices?: unknown; usage?: unknown }
  let text = 0
  if (Array.isArray(record.choices)) {
    for (const choice of record.choices as unknown[]) {
      const delta = (choice as { delta?: { content?: unknown; reasoning_content?: unknown } } | null)?.delta
      if (typeof delta?.content === 'string') text += delta.content.length
      if (typeof delta?.reasoning_content === 'string') text += delta.reasoning_content.length
    }
  }
  const usage = record.usage as { completion_tokens?: unknown } | null | undefined
  const completionTokens = typeof usage?.completion_tokens === 'number' ? usage.completion_tokens : undefined
  return { text, completionTokens, done: false }
}
