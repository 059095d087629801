import { VeloError } from '../errors.js'
import type { HttpOptions } from './http.js'
import { OpenAIClient } from './openai.js'
import type { ChatMessage } from './types.js'

/** What llama-server's `/props` says about the loaded model and its slots. */
export interface LlamaServerProps {
  totalSlots: number | undefined
  modelPath: string | undefined
  contextSize: number | undefined
  build: string | undefined
}

interface RawProps {
  total_slots?: number
  model_path?: string
  build_info?: string
  default_generation_settings?: { n_ctx?: number }
}

/** llama-server: the OpenAI surface plus its tokenizer, chat-template renderer and `/props`. */
export class LlamaServerClient extends OpenAIClient {
  constructor(baseUrl: string, options: HttpOptions = {}) {
    super(baseUrl, { ...options, kind: 'llama-server' })
  }

  async props(): Promise<LlamaServerProps> {
    const raw = await this.http.json<RawProps>('/props')
    return {
      totalSlots: raw.total_slots,
      modelPath: raw.model_path,
      contextSize: raw.default_generation_settings?.n_ctx,
      build: raw.build_info,
    }
  }

  async tokenize(text: string): Promise<number[]> {
    const result = await this.http.json<{ tokens?: unknown[] }>('/tokenize', {
      body: { content: text, add_special: false },
    })
    if (!Array.isArray(result.tokens)) {
      throw new VeloError('VELO_UPSTREAM_ERROR', `${this.baseUrl}/tokenize returned no tokens`)
    }
    return result.tokens.filter((token): token is number => typeof token === 'number')
  }

  /** Render the chat template, then tokenize it the way the server does for a chat request. */
  async countPromptTokens(_model: string, messages: ChatMessage[]): Promise<number> {
    const rendered = await this.http.json<{ prompt?: unknown }>('/apply-template', { body: { messages } })
    if (typeof rendered.prompt !== 'string') {
      throw new VeloError('VELO_UPSTREAM_ERROR', `${this.baseUrl}/apply-template returned no prompt`)
    }
    const tokens = await this.http.json<{ tokens?: unknown[] }>('/tokenize', {
      body: { content: rendered.prompt, add_special: true, parse_special: true },
    })
    if (!Array.isArray(tokens.tokens)) {
      throw new VeloError('VELO_UPSTREAM_ERROR', `${this.baseUrl}/tokenize returned no tokens`)
    }
    return tokens.tokens.length
  }
}
