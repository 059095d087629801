/**
 * Property: however the same answer is cut up (into upstream chunks, and the bytes of those
 * chunks into network reads), what the client reassembles is the same, and equals the
 * non-streamed translation of that answer.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  createNDJSONSplitter,
  createOllamaToOpenAIStream,
  createOpenAIToOllamaStream,
  createSSEParser,
  type OllamaChatResponse,
  type OpenAIChatCompletion,
  ollamaChatResponseToOpenai,
  openaiChatResponseToOllama,
  type TranslateContext,
} from '../../src/proxy/translate/index.js'
import { collectOllamaStream, collectOpenAIStream } from '../fixtures/translate/load.js'

const ctx: TranslateContext = {
  model: 'm',
  id: 'chatcmpl-p',
  created: 1,
  includeUsage: true,
  startedAt: 0,
  now: () => 10,
}

/** Cut a string into pieces at the given (unsorted, possibly repeated) positions. */
function cut(text: string, cuts: number[]): string[] {
  const points = [...new Set(cuts.map((at) => (text.length === 0 ? 0 : at % (text.length + 1))))].sort(
    (a, b) => a - b,
  )
  const pieces: string[] = []
  let from = 0
  for (const at of points) {
    pieces.push(text.slice(from, at))
    from = at
  }
  pieces.push(text.slice(from))
  return pieces
}

/** Cut bytes anywhere, including inside a multi-byte character. */
function cutBytes(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((at) => at % (bytes.length + 1)))].sort((a, b) => a - b)
  const pieces: Uint8Array[] = []
  let from = 0
  for (const at of points) {
    pieces.push(bytes.subarray(from, at))
    from = at
  }
  pieces.push(bytes.subarray(from))
  return pieces
}

const text = fc.string({ unit: 'grapheme', maxLength: 80 })
const cuts = fc.array(fc.nat({ max: 400 }), { maxLength: 12 })
const args = fc.dictionary(
  fc.string({ minLength: 1, maxLength: 8 }),
  fc.oneof(fc.string({ unit: 'grapheme', maxLength: 12 }), fc.integer(), fc.boolean(), fc.constant(null)),
  { maxKeys: 4 },
)
const toolCalls = fc.array(fc.record({ name: fc.stringMatching(/^[a-z_]{1,12}$/), arguments: args, cuts }), {
  maxLength: 3,
})
const counts = fc.record({ prompt: fc.nat({ max: 5000 }), completion: fc.nat({ max: 5000 }) })

describe('Ollama NDJSON -> OpenAI SSE, any chunking', () => {
  it('reassembles to the non-streamed translation', () => {
    fc.assert(
      fc.property(
        text,
        cuts,
        toolCalls,
        fc.constantFrom('stop', 'length'),
        counts,
        cuts,
        cuts,
        (content, contentCuts, calls, doneReason, usage, ndjsonCuts, sseCuts) => {
          const toolCallsOut = calls.map((call, i) => ({
            id: `call_${i}`,
            function: { index: i, name: call.name, arguments: call.arguments },
          }))
          const metrics = { prompt_eval_count: usage.prompt, eval_count: usage.completion }
          // The answer as Ollama streams it: content pieces, the tool calls whole, the done line.
          const lines: object[] = cut(content, contentCuts).map((piece) => ({
            model: 'up',
            created_at: '2026-01-01T00:00:00Z',
            message: { role: 'assistant', content: piece },
            done: false,
          }))
          if (toolCallsOut.length > 0) {
            lines.push({
              model: 'up',
              message: { role: 'assistant', content: '', tool_calls: toolCallsOut },
              done: false,
            })
          }
          lines.push({
            model: 'up',
            message: { role: 'assistant', content: '' },
            done: true,
            done_reason: doneReason,
            ...metrics,
          })
          const upstreamBytes = new TextEncoder().encode(
            lines.map((line) => `${JSON.stringify(line)}\n`).join(''),
          )

          // The server: split upstream bytes into lines, translate each.
          const translator = createOllamaToOpenAIStream('chat', ctx)
          let out = ''
          const splitter = createNDJSONSplitter((line) => {
            out += translator.push(JSON.parse(line) as object)
          })
          for (const piece of cutBytes(upstreamBytes, ndjsonCuts)) splitter.feed(piece)
          splitter.end()
          out += translator.end()

          // The client: read the SSE bytes in arbitrary pieces too.
          let reassembledBody = ''
          const parser = createSSEParser((data) => {
            reassembledBody += `data: ${data}\n\n`
          })
          for (const piece of cutBytes(new TextEncoder().encode(out), sseCuts)) parser.feed(piece)
          parser.end()
          expect(reassembledBody).toBe(out)

          const streamed = collectOpenAIStream(out)
          const plain = ollamaChatResponseToOpenai(
            {
              model: 'up',
              created_at: '',
              message: { role: 'assistant', content, tool_calls: toolCallsOut },
              done: true,
              done_reason: doneReason,
              ...metrics,
            } as OllamaChatResponse,
            ctx,
          )
          const message = plain.choices[0]?.message
          expect(streamed.content).toBe(message?.content ?? '')
          expect(streamed.toolCalls).toEqual(
            (message?.tool_calls ?? []).map((call) => ({
              id: call.id,
              name: call.function.name,
              arguments: call.function.arguments,
            })),
          )
          expect(streamed.finishReason).toBe(plain.choices[0]?.finish_reason)
          expect(streamed.usage).toEqual(plain.usage)
          expect(streamed.role).toBe('assistant')
          expect(streamed.done).toBe(true)
          expect(streamed.wellFormed).toBe(true)
        },
      ),
      { numRuns: 300 },
    )
  })
})

describe('OpenAI SSE -> Ollama NDJSON, any chunking', () => {
  it('reassembles to the non-streamed translation', () => {
    fc.assert(
      fc.property(
        text,
        cuts,
        toolCalls,
        fc.constantFrom('stop', 'length', 'tool_calls'),
        counts,
        cuts,
        cuts,
        (content, contentCuts, calls, finishReason, usage, sseCuts, ndjsonCuts) => {
          const base = { id: 'chatcmpl-up', object: 'chat.completion.chunk', created: 1, model: 'up' }
          const chunk = (delta: object, finish: string | null = null) => ({
            ...base,
            choices: [{ index: 0, delta, finish_reason: finish }],
          })
          // The answer as llama-server streams it: role, content pieces, tool call deltas with the
          // arguments string cut anywhere, the finish chunk, the usage chunk.
          const chunks: object[] = [chunk({ role: 'assistant', content: null })]
          for (const piece of cut(content, contentCuts)) chunks.push(chunk({ content: piece }))
          const fullCalls = calls.map((call, i) => ({
            id: `id${i}`,
            type: 'function' as const,
            function: { name: call.name, arguments: JSON.stringify(call.arguments) },
          }))
          calls.forEach((call, i) => {
            const [first = '', ...rest] = cut(JSON.stringify(call.arguments), call.cuts)
            chunks.push(
              chunk({
                tool_calls: [
                  {
                    index: i,
                    id: `id${i}`,
                    type: 'function',
                    function: { name: call.name, arguments: first },
                  },
                ],
              }),
            )
            for (const piece of rest)
              chunks.push(chunk({ tool_calls: [{ index: i, function: { arguments: piece } }] }))
          })
          chunks.push(chunk({}, finishReason))
          const tokens = {
            prompt_tokens: usage.prompt,
            completion_tokens: usage.completion,
            total_tokens: usage.prompt + usage.completion,
          }
          chunks.push({ ...base, choices: [], usage: tokens })
          const upstreamBytes = new TextEncoder().encode(
            `${chunks.map((item) => `data: ${JSON.stringify(item)}\n\n`).join('')}data: [DONE]\n\n`,
          )

          // The server: parse SSE from arbitrary reads, translate, end at [DONE].
          const translator = createOpenAIToOllamaStream('chat', ctx)
          let out = ''
          const parser = createSSEParser((data) => {
            out += data === '[DONE]' ? translator.end() : translator.push(JSON.parse(data) as object)
          })
          for (const piece of cutBytes(upstreamBytes, sseCuts)) parser.feed(piece)
          parser.end()
          out += translator.end()

          // The client reads NDJSON in arbitrary pieces.
          const lines: string[] = []
          const splitter = createNDJSONSplitter((line) => lines.push(line))
          for (const piece of cutBytes(new TextEncoder().encode(out), ndjsonCuts)) splitter.feed(piece)
          splitter.end()
          expect(lines.map((line) => `${line}\n`).join('')).toBe(out)

          const streamed = collectOllamaStream(out)
          const plain = openaiChatResponseToOllama(
            {
              id: 'chatcmpl-up',
              object: 'chat.completion',
              created: 1,
              model: 'up',
              choices: [
                {
                  index: 0,
                  message: {
                    role: 'assistant',
                    content,
                    ...(fullCalls.length ? { tool_calls: fullCalls } : {}),
                  },
                  finish_reason: finishReason,
                },
              ],
              usage: tokens,
            } as OpenAIChatCompletion,
            ctx,
          )
          expect(streamed.content).toBe(plain.message.content)
          expect(streamed.toolCalls).toEqual(
            (plain.message.tool_calls ?? []).map((call) => ({
              id: call.id,
              name: call.function.name,
              arguments: call.function.arguments,
            })),
          )
          expect(streamed.done).toBe(true)
          expect(streamed.linesAfterDone).toBe(0)
          expect(streamed.doneReason).toBe(plain.done_reason)
          expect(streamed.final?.['prompt_eval_count']).toBe(plain.prompt_eval_count)
          expect(streamed.final?.['eval_count']).toBe(plain.eval_count)
        },
      ),
      { numRuns: 300 },
    )
  })
})

describe('framing', () => {
  it('the SSE parser yields each event once, whatever the reads', () => {
    fc.assert(
      fc.property(
        fc.array(fc.string({ unit: 'grapheme', maxLength: 30 }), { maxLength: 10 }),
        cuts,
        (events, at) => {
          const body = events.map((data) => `data: ${JSON.stringify(data)}\r\n\r\n`).join('')
          const seen: string[] = []
          const parser = createSSEParser((data) => seen.push(JSON.parse(data) as string))
          for (const piece of cutBytes(new TextEncoder().encode(body), at)) parser.feed(piece)
          parser.end()
          expect(seen).toEqual(events)
        },
      ),
    )
  })

  it('the SSE parser takes event names, comments, multi-line data and a last event without its blank line', () => {
    const seen: Array<[string, string | undefined]> = []
    const parser = createSSEParser((data, event) => seen.push([data, event]))
    parser.feed(': keep-alive\n\nevent: error\ndata: {"a":\ndata: 1}\n\ndata: [DONE]')
    parser.end()
    expect(seen).toEqual([
      ['{"a":\n1}', 'error'],
      ['[DONE]', undefined],
    ])
  })

  it('the NDJSON splitter yields each line once, skipping blank lines, with or without a final newline', () => {
    const lines: string[] = []
    const splitter = createNDJSONSplitter((line) => lines.push(line))
    splitter.feed('{"a":1}\r\n\n{"b"')
    splitter.feed(':2}\n   \n{"c":3}')
    splitter.end()
    expect(lines).toEqual(['{"a":1}', '{"b":2}', '{"c":3}'])
  })
})
