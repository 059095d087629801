import { readFile } from 'node:fs/promises'
import { describe, expect, it } from 'vitest'
import { SCHEMA_FILE, schemaText } from '../../scripts/config-schema.js'
import { parseConfig } from '../../src/core/config/load.js'

describe('the published JSON Schema of velo.yaml', () => {
  it('is up to date with the zod schema (run `npx tsx scripts/config-schema.ts` when this fails)', async () => {
    const published = await readFile(SCHEMA_FILE, 'utf8').catch(() => '')
    expect(published).toBe(schemaText())
  })

  it('describes the keys serve reads, with their defaults', () => {
    const schema = JSON.parse(schemaText()) as {
      properties: Record<string, { properties?: Record<string, { default?: unknown }> }>
    }
    expect(Object.keys(schema.properties)).toEqual(
      expect.arrayContaining(['server', 'upstreams', 'aliases', 'managed', 'engine', 'speech']),
    )
    expect(schema.properties['server']?.properties?.['port']?.default).toBe(8000)
    expect(schema.properties['managed']?.properties?.['maxLoaded']?.default).toBe(2)
  })

  it('accepts the sizes and durations people write, which the zod schema turns into numbers', () => {
    const config = parseConfig({
      server: { upstreamTimeout: '2m', shutdownTimeout: 500 },
      managed: { idleTtl: '30s' },
    })
    expect(config.server.upstreamTimeout).toBe(120_000)
    expect(config.server.shutdownTimeout).toBe(500)
    expect(config.managed.idleTtl).toBe(30_000)
  })
})
