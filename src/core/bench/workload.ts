import { readFile } from 'node:fs/promises'
import type { BackendClient, ChatMessage } from '../backends/types.js'
import { errorMessage, VeloError } from '../errors.js'
import { seededRandom } from './stats.js'

/** One request to send: its messages, how many tokens to generate, and its intended prompt length. */
export interface PlannedRequest {
  messages: ChatMessage[]
  maxTokens: number
  /** The prompt length it was built to (synthetic workloads), as the server counts it. */
  expectedPromptTokens: number | undefined
}

export interface Workload {
  kind: 'synthetic' | 'shared-prefix' | 'dataset'
  /** Exact prompt length of every request (synthetic), as the server counted it while calibrating. */
  promptTokens: number | undefined
  /** How the prompt length was found: the server's tokenizer, or its usage counts. */
  calibration: 'tokenizer' | 'usage' | undefined
  next(): PlannedRequest
}

/**
 * Words that are one token in the common tokenizers (with their leading space), so that a prompt
 * grows by about one token per word and calibration converges in a few probes.
 */
const WORDS = (
  'the of and to in is that for it with as on be at by this from or an are was not but have you ' +
  'they we can will all one time more some would there their what about which when make like just ' +
  'know people into year good take come could them see other than then now look only also back after ' +
  'use two how our work first well way even new want because any these give day most'
).split(' ')

/** `count` words drawn from `vocabulary` by a PRNG seeded with `seed`: the same seed, the same text. */
function words(vocabulary: readonly string[], seed: number, count: number): string {
  const random = seededRandom(seed)
  const picked: string[] = []
  for (let index = 0; index < count; index += 1) {
    picked.push(vocabulary[Math.floor(random() * vocabulary.length)] ?? 'the')
  }
  return picked.join(' ')
}

/**
 * The filler words that are exactly one token for this server's tokenizer, when it has one, so a
 * prompt's length is its overhead plus its word count whichever words it draws.
 */
async function singleTokenWords(client: BackendClient): Promise<readonly string[]> {
  if (!client.tokenize) return WORDS
  const tokenize = client.tokenize.bind(client)
  const single: string[] = []
  for (const word of WORDS) {
    // Inside a sentence a word follows a space; tokenize it the same way.
    const [alone, spaced] = await Promise.all([tokenize('the'), tokenize(`the ${word}`)])
    if (spaced.length - alone.length === 1) single.push(word)
  }
  return single.length >= 20 ? single : WORDS
}

/**
 * A tag that makes each prompt unique from its first token, so no request reuses another's prompt
 * cache: six digits scrambled by a bijection (7919 is prime to 10^6), so consecutive requests differ
 * in every digit, and the fixed width keeps the token count the same.
 */
export function uniqueTag(index: number): string {
  return `${String((index * 7919) % 1_000_000).padStart(6, '0')}:`
}

export interface SyntheticOptions {
  model: string
  promptTokens: number
  genTokens: number
  /** Tokens of a system prompt shared by every request. */
  sharedPrefixTokens?: number | undefined
  seed: number
  signal?: AbortSignal | undefined
  onProbe?: (message: string) => void
}

type Counter = (messages: ChatMessage[]) => Promise<number>

/** Count a prompt: the server's tokenizer when it has one, else one 1-token generation's usage. */
function promptCounter(client: BackendClient, model: string, signal?: AbortSignal): Counter {
  const tokenizer = client.countPromptTokens?.bind(client)
  if (tokenizer) return (messages) => tokenizer(model, messages)
  return async (messages) => {
    for await (const event of client.chatStream({ model, messages, maxTokens: 1, temperature: 0 }, signal)) {
      if (event.type === 'end') {
        const count = event.usage.promptTokens ?? event.timings?.promptTokens
        if (count === undefined) {
          throw new VeloError('VELO_UPSTREAM_ERROR', `${client.baseUrl} reports no prompt token count`, {
            suggestion: 'use --dataset, or a server that returns usage',
          })
        }
        return count
      }
    }
    throw new VeloError(
      'VELO_UPSTREAM_ERROR',
      `${client.baseUrl} ended a calibration request without a result`,
    )
  }
}

/**
 * Prompts of an exact token length: a unique tag plus filler words, the number of words found by
 * counting with the server (its tokenizer, or usage counts of 1-token requests) and correcting
 * until the count matches.
 */
export async function buildSyntheticWorkload(
  client: BackendClient,
  options: SyntheticOptions,
): Promise<Workload> {
  const count = promptCounter(client, options.model, options.signal)
  const vocabulary = await singleTokenWords(client)
  const system =
    options.sharedPrefixTokens !== undefined && options.sharedPrefixTokens > 0
      ? words(vocabulary, options.seed, options.sharedPrefixTokens)
      : undefined
  // Every request draws its own words (not just its own tag): some engines reuse cached prompt
  // tokens past the first difference, which would hide prompt processing.
  const messagesFor = (index: number, length: number): ChatMessage[] => {
    const body = words(vocabulary, options.seed * 1_000_003 + index + 1, length)
    const content = length > 0 ? `${uniqueTag(index)} ${body}` : uniqueTag(index)
    return system === undefined
      ? [{ role: 'user', content }]
      : [
          { role: 'system', content: system },
          { role: 'user', content },
        ]
  }
  const target = options.promptTokens
  const probes = new Map<number, number>()
  const measure = async (length: number): Promise<number> => {
    const known = probes.get(length)
    if (known !== undefined) return known
    const tokens = await count(messagesFor(0, length))
    probes.set(length, tokens)
    options.onProbe?.(`calibrating prompt length: ${length} words -> ${tokens} tokens (target ${target})`)
    return tokens
  }
  const floor = await measure(0)
  if (target < floor) {
    const what =
      system === undefined ? 'the chat template and request tag' : 'the shared prefix, chat template and tag'
    throw new VeloError(
      'VELO_BAD_REQUEST',
      `--prompt-tokens ${target} is shorter than ${what} (${floor} tokens)`,
      {
        suggestion: `use --prompt-tokens ${floor} or more`,
      },
    )
  }
  let length = target - floor
  let best = { length: 0, tokens: floor }
  let slope = 1
  for (let attempt = 0; attempt < 10 && best.tokens !== target; attempt += 1) {
    const tokens = await measure(length)
    if (Math.abs(tokens - target) < Math.abs(best.tokens - target)) best = { length, tokens }
    if (tokens === target) break
    if (length > 0 && tokens > floor) slope = (tokens - floor) / length
    const step = Math.round((target - tokens) / slope) || Math.sign(target - tokens)
    const nextLength = Math.max(0, length + step)
    if (probes.has(nextLength)) break
    length = nextLength
  }
  let index = 0
  const exact = best.tokens
  return {
    kind: system === undefined ? 'synthetic' : 'shared-prefix',
    promptTokens: exact,
    calibration: client.countPromptTokens ? 'tokenizer' : 'usage',
    next() {
      index += 1
      return {
        messages: messagesFor(index, best.length),
        maxTokens: options.genTokens,
        expectedPromptTokens: exact,
      }
    },
  }
}

interface DatasetLine {
  prompt?: unknown
  text?: unknown
  messages?: unknown
  max_tokens?: unknown
}

function isMessage(value: unknown): value is ChatMessage {
  if (!value || typeof value !== 'object') return false
  const { role, content } = value as { role?: unknown; content?: unknown }
  return (role === 'system' || role === 'user' || role === 'assistant') && typeof content === 'string'
}

/** A JSONL file of `{"prompt": "..."}` or `{"messages": [...]}` lines (optional `max_tokens`), sent in turn. */
export async function loadDataset(path: string, genTokens: number): Promise<Workload> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    throw new VeloError('VELO_BAD_REQUEST', `--dataset: cannot read ${path}: ${errorMessage(error)}`)
  }
  const requests: PlannedRequest[] = []
  const lines = text.split('\n')
  for (const [number, line] of lines.entries()) {
    if (!line.trim()) continue
    const where = `${path}:${number + 1}`
    let parsed: DatasetLine
    try {
      parsed = JSON.parse(line) as DatasetLine
    } catch {
      throw new VeloError('VELO_BAD_REQUEST', `--dataset ${where}: not valid JSON`)
    }
    let messages: ChatMessage[]
    if (typeof parsed === 'string') messages = [{ role: 'user', content: parsed }]
    else if (typeof parsed.prompt === 'string') messages = [{ role: 'user', content: parsed.prompt }]
    else if (typeof parsed.text === 'string') messages = [{ role: 'user', content: parsed.text }]
    else if (
      Array.isArray(parsed.messages) &&
      parsed.messages.length > 0 &&
      parsed.messages.every(isMessage)
    ) {
      messages = parsed.messages
    } else {
      throw new VeloError(
        'VELO_BAD_REQUEST',
        `--dataset ${where}: expected {"prompt": "..."} or {"messages": [{"role": "user", "content": "..."}]}`,
      )
    }
    const maxTokens =
      typeof parsed.max_tokens === 'number' && Number.isInteger(parsed.max_tokens) && parsed.max_tokens > 0
        ? parsed.max_tokens
        : genTokens
    requests.push({ messages, maxTokens, expectedPromptTokens: undefined })
  }
  if (requests.length === 0)
    throw new VeloError('VELO_BAD_REQUEST', `--dataset ${path}: no prompts in the file`)
  let index = 0
  return {
    kind: 'dataset',
    promptTokens: undefined,
    calibration: undefined,
    next() {
      const request = requests[index % requests.length] ?? requests[0]
      index += 1
      if (!request) throw new VeloError('VELO_INTERNAL', 'empty dataset')
      return request
    },
  }
}
