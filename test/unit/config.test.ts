import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig, parseConfig } from '../../src/core/config/load.js'
import { parseBytes, parseDuration } from '../../src/core/config/units.js'
import { VeloError } from '../../src/core/errors.js'

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'velo-config-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('config', () => {
  it('gives every key a default, so an empty config is valid', () => {
    const config = parseConfig({})
    expect(config.server).toMatchObject({ host: '127.0.0.1', port: 8000, bodyLimit: 10 * 1024 ** 2 })
    expect(config.managed.maxLoaded).toBe(2)
    expect(config.managed.idleTtl).toBe(600_000)
    expect(config.cache.exact.enabled).toBe(true)
    expect(config.upstreams).toEqual([])
  })

  it('parses units in sizes and durations', () => {
    expect(parseBytes('10MiB')).toBe(10 * 1024 ** 2)
    expect(parseBytes('256mb')).toBe(256e6)
    expect(parseBytes('lots')).toBeUndefined()
    expect(parseDuration('1h')).toBe(3_600_000)
    expect(parseDuration('500ms')).toBe(500)
    expect(parseDuration('soon')).toBeUndefined()
  })

  it('names the file, line, field and expectation of each bad value', async () => {
    const file = join(dir, 'velo.yaml')
    await writeFile(file, 'server:\n  port: 8000\nupstreams:\n  - url: http://ok:1\n  - url: localhost\n')
    const error = await loadConfig(file).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(VeloError)
    expect((error as VeloError).code).toBe('VELO_CONFIG_INVALID')
    expect((error as VeloError).message).toMatch(
      /velo\.yaml:5: upstreams\[1\]\.url: expected a URL.*got "localhost"/,
    )
  })

  it('rejects unknown keys instead of ignoring a typo', () => {
    expect(() => parseConfig({ server: { prot: 9000 } })).toThrow(/server.*prot/)
  })

  it('reports invalid YAML with the file', async () => {
    const file = join(dir, 'broken.yaml')
    await writeFile(file, 'server: [unclosed\n')
    await expect(loadConfig(file)).rejects.toThrow(/broken\.yaml: invalid YAML/)
  })

  it('refuses a --config file that does not exist', async () => {
    await expect(loadConfig(join(dir, 'missing.yaml'))).rejects.toThrow(/does not exist/)
  })
})
