import {
  findProfile,
  type Hardware,
  type Profile,
  profileToLlamaServerArgs,
  profileToOllamaOptions,
} from '../core/profiles/index.js'
import type { ManagedSpec } from './managed.js'

/** What a matching profile changes for one model. */
export interface AppliedProfile {
  id: string
  /** llama-server arguments for a managed model (-c, -ngl, -t, -b, -ub, -fa, -ctk/-ctv, -np). */
  llamaServerArgs: string[]
  /** Ollama `options` for a model on an Ollama upstream (num_ctx, num_gpu, num_thread, num_batch). */
  ollamaOptions: Record<string, unknown>
  /** Requests at once the profile was tuned for (OLLAMA_NUM_PARALLEL / -np): the model's admission limit. */
  parallel?: number | undefined
}

/** Finds the profile that applies to a model on this machine; serve asks it once per model. */
export interface ProfileLookup {
  forManaged(spec: ManagedSpec): Promise<AppliedProfile | undefined>
  /** `digest`: the upstream's digest of the model (Ollama lists one), matched before the name. */
  forUpstream(model: string, kind: 'ollama' | 'openai', digest?: string): Promise<AppliedProfile | undefined>
}

function applied(profile: Profile | undefined): AppliedProfile | undefined {
  if (!profile) return undefined
  return {
    id: profile.id,
    llamaServerArgs: profileToLlamaServerArgs(profile),
    ollamaOptions: { ...profileToOllamaOptions(profile) },
    parallel: profile.parameters.parallel,
  }
}

/**
 * Profiles from the store (what `velo optimize` writes), for this machine: a managed model's
 * profile by its GGUF file, an Ollama model's by its digest, else its name (with or without
 * `:latest`). OpenAI-compatible upstreams run with their own settings; nothing applies there.
 */
export function storeProfiles(
  options: { dir?: string; hardware?: Hardware; onSkip?: (file: string, reason: string) => void } = {},
): ProfileLookup {
  const find = (model: string, backend: Profile['backend']) =>
    findProfile(model, {
      dir: options.dir,
      hardware: options.hardware,
      backend,
      onSkip: (skipped) => options.onSkip?.(skipped.file, skipped.reason),
    })
  return {
    async forManaged(spec) {
      return applied(await find(spec.path, 'llama-server'))
    },
    async forUpstream(model, kind, digest) {
      if (kind !== 'ollama') return undefined
      const bare = model.endsWith(':latest') ? model.slice(0, -':latest'.length) : model
      const hex = digest?.replace(/^sha256:/, '')
      for (const key of [hex, model, bare, `${bare}:latest`]) {
        if (!key) continue
        const profile = await find(key, 'ollama')
        if (profile) return applied(profile)
      }
      return undefined
    },
  }
}

/**
 * Put a profile's Ollama options under the request's own: a key the request sets is left alone.
 * Returns the new options, or undefined when the profile adds nothing.
 */
export function mergeOllamaOptions(
  requested: unknown,
  profile: Record<string, unknown>,
): Record<string, unknown> | undefined {
  const own =
    requested !== null && typeof requested === 'object' ? (requested as Record<string, unknown>) : {}
  let merged: Record<string, unknown> | undefined
  for (const [key, value] of Object.entries(profile)) {
    if (own[key] !== undefined && own[key] !== null) continue
    merged ??= { ...own }
    merged[key] = value
  }
  return merged
}
