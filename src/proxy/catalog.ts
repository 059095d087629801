import { VeloError } from '../core/errors.js'
import type { ManagedModels, ManagedSpec } from './managed.js'
import type { Upstream } from './upstreams.js'

export type ModelKind = 'managed' | 'ollama' | 'openai'

/** One model velo serves: a name clients use, and where requests for it go. */
export interface CatalogEntry {
  id: string
  aliases: string[]
  kind: ModelKind
  /** The name the upstream knows (what goes into the forwarded request's `model`). */
  upstreamModel: string
  /** For `ollama` and `openai` models: the first upstream (in config order) that serves it. */
  upstream: Upstream | undefined
  /**
   * Every upstream of this kind that serves the model, in config order (the first is `upstream`):
   * requests are balanced across them and fall back from one to another. Empty for managed models.
   */
  upstreams: Upstream[]
  /** For `managed` models. */
  managed: ManagedSpec | undefined
  /** Ollama's `/api/tags` entry, for models an Ollama upstream lists. */
  tag: Record<string, unknown> | undefined
  created: number | undefined
  ownedBy: string
}

/** `qwen2.5:latest` and `qwen2.5` are the same Ollama model. */
function withoutLatest(name: string): string {
  return name.endsWith(':latest') ? name.slice(0, -':latest'.length) : name
}

/**
 * Every model velo can serve: managed GGUF models first, then each upstream's models in config
 * order, plus aliases. The first source that has a name wins; a later upstream of the same kind
 * that lists the same name joins that entry as another place to send its requests.
 */
export class Catalog {
  private byName = new Map<string, CatalogEntry>()
  private list: CatalogEntry[] = []
  private stale = true

  constructor(
    private readonly managed: ManagedModels,
    private readonly upstreams: Upstream[],
    private readonly aliases: Record<string, string>,
  ) {}

  /** Rebuild on next use (after an upstream refresh or a new managed model). */
  invalidate(): void {
    this.stale = true
  }

  entries(): CatalogEntry[] {
    this.rebuild()
    return this.list
  }

  /** The entry for a name clients send (id, alias, with or without `:latest`). */
  resolve(name: string): CatalogEntry | undefined {
    this.rebuild()
    return this.byName.get(name) ?? this.byName.get(withoutLatest(name)) ?? this.byName.get(`${name}:latest`)
  }

  /** 404 naming what is available, for clients and people alike. */
  notFound(name: string): VeloError {
    const names = this.entries().flatMap((entry) => [entry.id, ...entry.aliases])
    const shown = names.slice(0, 20).join(', ')
    const more = names.length > 20 ? ` and ${names.length - 20} more` : ''
    return new VeloError(
      'VELO_MODEL_NOT_FOUND',
      `model "${name}" not found; available: ${shown || 'none'}${more}`,
      { suggestion: 'use one of the available names (GET /v1/models or /api/tags lists them)' },
    )
  }

  private rebuild(): void {
    if (!this.stale) return
    this.stale = false
    const list: CatalogEntry[] = []
    const byName = new Map<string, CatalogEntry>()
    const add = (entry: CatalogEntry): void => {
      if (byName.has(entry.id)) return
      list.push(entry)
      byName.set(entry.id, entry)
    }
    for (const spec of this.managed.specs()) {
      add({
        id: spec.id,
        aliases: [],
        kind: 'managed',
        upstreamModel: spec.id,
        upstream: undefined,
        upstreams: [],
        managed: spec,
        tag: undefined,
        created: undefined,
        ownedBy: 'velo',
      })
    }
    for (const upstream of this.upstreams) {
      if (!upstream.kind) continue
      for (const model of upstream.models) {
        const existing = byName.get(model.name)
        if (existing) {
          // Same name, same API: one more upstream serving the model. A managed model or another
          // API keeps the name to itself (its requests could not move between them as they are).
          if (existing.kind === upstream.kind && !existing.upstreams.includes(upstream)) {
            existing.upstreams.push(upstream)
          }
          continue
        }
        add({
          id: model.name,
          aliases: [],
          kind: upstream.kind,
          upstreamModel: model.name,
          upstream,
          upstreams: [upstream],
          managed: undefined,
          tag: model.tag,
          created: model.created,
          ownedBy: model.ownedBy ?? upstream.name,
        })
      }
    }
    const aliasPairs: [string, string][] = [
      ...this.managed
        .specs()
        .flatMap((spec) => spec.aliases.map((alias): [string, string] => [alias, spec.id])),
      ...Object.entries(this.aliases),
    ]
    for (const [alias, target] of aliasPairs) {
      const entry = byName.get(target) ?? byName.get(withoutLatest(target)) ?? byName.get(`${target}:latest`)
      if (!entry || byName.has(alias)) continue
      entry.aliases.push(alias)
      byName.set(alias, entry)
    }
    this.list = list
    this.byName = byName
  }
}
