import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'

/** The metrics of one velo server, in its own Registry (tests and several servers never share one). */
export interface VeloMetrics {
  registry: Registry
  requests: Counter<'model' | 'route' | 'status'>
  duration: Histogram<'model' | 'route'>
  ttft: Histogram<'model'>
  tokens: Counter<'model' | 'kind'>
  active: Gauge<'model'>
  queueDepth: Gauge<'model'>
  upstreamUp: Gauge<'upstream'>
  modelLoaded: Gauge<'model'>
}

export function createMetrics(options: { defaults?: boolean } = {}): VeloMetrics {
  const registry = new Registry()
  if (options.defaults !== false) collectDefaultMetrics({ register: registry })
  const registers = [registry]
  return {
    registry,
    requests: new Counter({
      name: 'velo_requests_total',
      help: 'Requests served, by model, route and HTTP status',
      labelNames: ['model', 'route', 'status'],
      registers,
    }),
    duration: new Histogram({
      name: 'velo_request_duration_seconds',
      help: 'Time from request to the end of the response',
      labelNames: ['model', 'route'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers,
    }),
    ttft: new Histogram({
      name: 'velo_time_to_first_token_seconds',
      help: 'Time from request to the first byte of generated output',
      labelNames: ['model'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    tokens: new Counter({
      name: 'velo_tokens_total',
      help: 'Tokens processed, by model and kind (prompt or completion)',
      labelNames: ['model', 'kind'],
      registers,
    }),
    active: new Gauge({
      name: 'velo_active_requests',
      help: 'Requests running upstream right now',
      labelNames: ['model'],
      registers,
    }),
    queueDepth: new Gauge({
      name: 'velo_queue_depth',
      help: 'Requests waiting for a slot or for their model to load',
      labelNames: ['model'],
      registers,
    }),
    upstreamUp: new Gauge({
      name: 'velo_upstream_up',
      help: '1 when the upstream answered its last check',
      labelNames: ['upstream'],
      registers,
    }),
    modelLoaded: new Gauge({
      name: 'velo_model_loaded',
      help: '1 when the model is loaded (managed: its llama-server runs)',
      labelNames: ['model'],
      registers,
    }),
  }
}
