import type { VeloConfig } from '../core/config/schema.js'

/** The body limit of a route: `server.routeBodyLimits` for it, else the audio or general limit. */
export function bodyLimitFor(config: VeloConfig, route: string): number {
  const own = config.server.routeBodyLimits[route]
  if (own !== undefined) return own
  return route.startsWith('/v1/audio/') ? config.server.audioBodyLimit : config.server.bodyLimit
}
