import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Logger } from 'pino'
import type { VeloConfig } from '../core/config/schema.js'
import type { Auth, Principal } from './auth/index.js'
import type { Catalog, CatalogEntry } from './catalog.js'
import type { ApiFamily } from './errors.js'
import type { ManagedModels } from './managed.js'
import type { VeloMetrics } from './metrics.js'
import type { ResponseCache, Scheduler } from './pipeline-types.js'
import type { AppliedProfile } from './profiles.js'
import type { ToolCallRepairer } from './repair/index.js'
import type { AutoRouter } from './scheduler/auto-router.js'
import type { RequestRecord, StatsTracker } from './stats.js'
import type { Upstream } from './upstreams.js'

/** The server's shared parts, as the route handlers see them. */
export interface ProxyState {
  config: VeloConfig
  /** Keys, scopes and per-key limits from `config.auth`. */
  auth: Auth
  version: string
  catalog: Catalog
  managed: ManagedModels
  upstreams: Upstream[]
  scheduler: Scheduler
  /** A scheduler was given (not the pass-through): compute what it uses, like prefix keys. */
  scheduling: boolean
  cache: ResponseCache | undefined
  repairer: ToolCallRepairer | undefined
  /** The `auto` alias (scheduler.auto); undefined when no rule and no default is configured. */
  autoRouter: AutoRouter | undefined
  metrics: VeloMetrics
  stats: StatsTracker
  logger: Logger
  startedAt: Date
  /** Requests running upstream, by model id. */
  active: Map<string, number>
  /** Requests waiting for admission or for their model to load, by model id. */
  waiting: Map<string, number>
  /** Resolve a model name, refreshing the upstream lists once when it is unknown; 404 otherwise. */
  resolveModel(name: string): Promise<CatalogEntry>
  /** The profile for a model on an upstream (memoized per model). */
  profileFor(entry: CatalogEntry): Promise<AppliedProfile | undefined>
  /** A model, an upstream or the counters changed: tell the dashboard now. */
  notify(): void
  /** The address velo listens on (`http://127.0.0.1:8000`), once listening. */
  listen: string
}

/** One request in flight. */
export interface RequestContext {
  id: string
  req: IncomingMessage
  res: ServerResponse
  path: string
  family: ApiFamily
  /** performance.now() at arrival. */
  started: number
  /** Date.now() at arrival. */
  startedEpoch: number
  /** Aborted when the client goes away before the response ends. */
  abort: AbortController
  client: string
  record: RequestRecord
  /** Log this request at info (inference) rather than debug (listings, health, metrics). */
  important: boolean
  /** The API key the request presented (undefined when keys are off or the path is open). */
  principal?: Principal | undefined
  /** The model the `auto` alias chose for this request (`x-velo-routed-model`). */
  routedModel?: string
}

/** The error a request ends with when its client closed the connection first. */
export class ClientClosed extends Error {
  constructor() {
    super('client closed the connection')
    this.name = 'ClientClosed'
  }
}
