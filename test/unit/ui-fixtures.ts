import type { ModelStatus, RecentRequest, UpstreamHealth, VeloStatus } from '../../src/proxy/status-types.js'

/** Snapshots for the dashboard tests: one base, overridden per state. */
export function statusFixture(overrides: Partial<VeloStatus> = {}): VeloStatus {
  return {
    version: '0.1.0',
    listen: '127.0.0.1:8000',
    startedAt: '2025-01-01T10:00:00.000Z',
    uptimeSeconds: 3725,
    totals: { requests: 1234, errors: 0, promptTokens: 56_000, completionTokens: 120_000 },
    requestsPerSecond: 3.2,
    tokensPerSecond: 154,
    tokensPerSecondHistory: Array.from({ length: 60 }, (_, i) => (i * 7) % 210),
    cache: { hits: 42, semanticHits: 0, misses: 58, hitRate: 0.42, entries: 12, bytes: 3_500_000 },
    models: [],
    recent: [],
    upstreams: [],
    errors: [],
    ...overrides,
  }
}

export function modelFixture(overrides: Partial<ModelStatus> = {}): ModelStatus {
  return {
    id: 'velo-tiny',
    aliases: [],
    kind: 'managed',
    upstream: 'http://127.0.0.1:41234',
    state: 'ready',
    slotsBusy: 0,
    slotsTotal: 4,
    queueDepth: 0,
    paused: false,
    requestsPerSecond: 0,
    generationTokensPerSecond: 0,
    ttftP50Ms: undefined,
    ttftP95Ms: undefined,
    profile: undefined,
    error: undefined,
    ...overrides,
  }
}

export function requestFixture(overrides: Partial<RecentRequest> = {}): RecentRequest {
  return {
    id: 'req-1',
    at: '2025-01-01T11:02:03.000Z',
    model: 'velo-tiny',
    client: '127.0.0.1',
    route: '/v1/chat/completions',
    status: 200,
    ttftMs: 120,
    promptTokens: 32,
    completionTokens: 64,
    durationMs: 850,
    cache: 'miss',
    ...overrides,
  }
}

export function upstreamFixture(overrides: Partial<UpstreamHealth> = {}): UpstreamHealth {
  return {
    url: 'http://127.0.0.1:11434',
    kind: 'ollama',
    healthy: true,
    lastError: undefined,
    lastErrorAt: undefined,
    ...overrides,
  }
}

/** A busy server: one ready model with a queue, one loading, one failed, an unhealthy upstream. */
export function busyStatus(): VeloStatus {
  return statusFixture({
    totals: { requests: 1234, errors: 3, promptTokens: 56_000, completionTokens: 120_000 },
    models: [
      modelFixture({
        slotsBusy: 4,
        queueDepth: 7,
        requestsPerSecond: 3.2,
        generationTokensPerSecond: 154,
        ttftP50Ms: 120,
        ttftP95Ms: 480,
        profile: 'velo-tiny@cpu-8c',
      }),
      modelFixture({
        id: 'qwen2.5:7b',
        kind: 'ollama',
        state: 'loading',
        upstream: 'http://127.0.0.1:11434',
      }),
      modelFixture({
        id: 'gpu-box-model',
        kind: 'openai',
        state: 'failed',
        upstream: 'http://gpu-box:8080/v1',
        slotsTotal: 0,
        error: 'connect ECONNREFUSED',
      }),
    ],
    recent: Array.from({ length: 12 }, (_, i) =>
      requestFixture({
        id: `req-${i}`,
        at: `2025-01-01T11:02:${String(10 + i).padStart(2, '0')}.000Z`,
        status: i === 11 ? 502 : 200,
        model: i === 11 ? 'gpu-box-model' : 'velo-tiny',
      }),
    ),
    upstreams: [
      upstreamFixture(),
      upstreamFixture({
        url: 'http://gpu-box:8080/v1',
        kind: 'openai',
        healthy: false,
        lastError: 'connect ECONNREFUSED',
        lastErrorAt: '2025-01-01T11:02:21.000Z',
      }),
    ],
    errors: [{ at: '2025-01-01T11:02:21.000Z', message: 'gpu-box-model: upstream unreachable' }],
  })
}
