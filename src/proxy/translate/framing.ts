/**
 * Incremental framing of upstream bodies: SSE events (OpenAI-compatible servers) and NDJSON
 * lines (Ollama). Bytes go in as they arrive, split anywhere, even inside a multi-byte character;
 * whole events and lines come out.
 */
import { createParser } from 'eventsource-parser'

export interface IncrementalParser {
  /** More upstream bytes (or text). */
  feed(chunk: Uint8Array | string): void
  /** The upstream ended: flush what is left (a last line without its newline). */
  end(): void
}

/** The data of each SSE event (`[DONE]` included, as it is) and its event name, if any. */
export function createSSEParser(
  onEvent: (data: string, event: string | undefined) => void,
): IncrementalParser {
  const decoder = new TextDecoder()
  const parser = createParser({ onEvent: (message) => onEvent(message.data, message.event) })
  return {
    feed(chunk) {
      parser.feed(typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true }))
    },
    end() {
      const rest = decoder.decode()
      // A final event without its blank line still counts: consume what is buffered.
      parser.feed(`${rest}\n\n`)
      parser.reset({ consume: true })
    },
  }
}

/** Each non-empty line of an NDJSON body, without its newline (and without a trailing \r). */
export function createNDJSONSplitter(onLine: (line: string) => void): IncrementalParser {
  const decoder = new TextDecoder()
  let partial = ''
  const emit = (line: string): void => {
    const text = line.endsWith('\r') ? line.slice(0, -1) : line
    if (text.trim() !== '') onLine(text)
  }
  return {
    feed(chunk) {
      const text = partial + (typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true }))
      let start = 0
      let newline = text.indexOf('\n', start)
      while (newline >= 0) {
        emit(text.slice(start, newline))
        start = newline + 1
        newline = text.indexOf('\n', start)
      }
      partial = start === 0 ? text : text.slice(start)
    },
    end() {
      const rest = partial + decoder.decode()
      partial = ''
      emit(rest)
    },
  }
}
