import { VeloError } from '../../core/errors.js'

/**
 * The `auto` model alias: a client asks for `auto` and velo picks a model by simple rules, for
 * example short prompts without tools to a small model and everything else to a large one.
 * Rules are tried in order; the first whose every condition holds wins; `default` otherwise.
 */
export interface AutoRule {
  model: string
  /** Matches prompts of at least this many characters. */
  minPromptChars?: number
  /** Matches prompts of at most this many characters. */
  maxPromptChars?: number
  /** true: only requests that declare tools; false: only requests without tools. */
  tools?: boolean
}

export interface AutoRouterConfig {
  /** The model name clients use (default `auto`). */
  alias: string
  rules: AutoRule[]
  default?: string | undefined
}

export interface AutoRouteInput {
  promptChars: number
  hasTools: boolean
}

export interface AutoRouter {
  readonly alias: string
  /** The model for this request; throws a 400 VeloError when no rule matches and there is no default. */
  route(input: AutoRouteInput): { model: string; rule: number | undefined }
}

export function ruleMatches(rule: AutoRule, input: AutoRouteInput): boolean {
  if (rule.minPromptChars !== undefined && input.promptChars < rule.minPromptChars) return false
  if (rule.maxPromptChars !== undefined && input.promptChars > rule.maxPromptChars) return false
  if (rule.tools !== undefined && rule.tools !== input.hasTools) return false
  return true
}

export function createAutoRouter(config: AutoRouterConfig): AutoRouter {
  return {
    alias: config.alias,
    route(input) {
      const index = config.rules.findIndex((rule) => ruleMatches(rule, input))
      const rule = config.rules[index]
      if (rule) return { model: rule.model, rule: index }
      if (config.default) return { model: config.default, rule: undefined }
      throw new VeloError(
        'VELO_BAD_REQUEST',
        `no scheduler.auto rule matches this request for "${config.alias}"`,
        {
          suggestion: 'add a rule without conditions, or set scheduler.auto.default in velo.yaml',
        },
      )
    },
  }
}

function textLength(content: unknown): number {
  if (typeof content === 'string') return content.length
  if (Array.isArray(content)) {
    let total = 0
    for (const part of content) {
      if (part && typeof part === 'object' && 'text' in part && typeof part.text === 'string')
        total += part.text.length
    }
    return total
  }
  return 0
}

/** Prompt length in characters and whether tools are declared, from an OpenAI or Ollama body. */
export function describePrompt(body: unknown): AutoRouteInput {
  if (typeof body !== 'object' || body === null) return { promptChars: 0, hasTools: false }
  const record = body as Record<string, unknown>
  let promptChars = 0
  const messages = record['messages']
  if (Array.isArray(messages)) {
    for (const message of messages) {
      if (message && typeof message === 'object' && 'content' in message)
        promptChars += textLength(message.content)
    }
  }
  promptChars += textLength(record['prompt']) + textLength(record['system'])
  const tools = record['tools']
  return { promptChars, hasTools: Array.isArray(tools) && tools.length > 0 }
}
