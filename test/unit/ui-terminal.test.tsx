import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { canDrawLive, inCi } from '../../src/ui/terminal.js'

// The environments that once split velo's decision from Ink's: an empty CI, CONTINUOUS_INTEGRATION.
const CASES: NodeJS.ProcessEnv[] = [
  {},
  { CI: 'true' },
  { CI: '' },
  { CI: '0' },
  { CI: 'false' },
  { CONTINUOUS_INTEGRATION: '1' },
  { CONTINUOUS_INTEGRATION: '' },
  { CONTINUOUS_INTEGRATION: 'false' },
  { CI: '0', CONTINUOUS_INTEGRATION: 'yes' },
]

const saved = { ...process.env }
afterEach(() => {
  for (const key of ['CI', 'CONTINUOUS_INTEGRATION']) {
    if (saved[key] === undefined) delete process.env[key]
    else process.env[key] = saved[key]
  }
})

/** What Ink's own `is-in-ci` decides under `env`: a fresh copy of it, evaluated with that env. */
async function inkSeesCi(env: NodeJS.ProcessEnv, run: number): Promise<boolean> {
  delete process.env['CI']
  delete process.env['CONTINUOUS_INTEGRATION']
  Object.assign(process.env, env)
  const inkRequire = createRequire(createRequire(import.meta.url).resolve('ink'))
  const url = `${pathToFileURL(inkRequire.resolve('is-in-ci')).href}?run=${run}`
  const module = (await import(/* @vite-ignore */ url)) as { default: boolean }
  return module.default
}

describe('canDrawLive', () => {
  it('reads CI exactly as Ink does, so a live view never leaves a blank screen', async () => {
    let run = 0
    for (const env of CASES) {
      run += 1
      expect({ env, velo: inCi(env) }).toEqual({ env, velo: await inkSeesCi(env, run) })
    }
    expect(inCi({ CI: '' })).toBe(true)
    expect(inCi({ CONTINUOUS_INTEGRATION: '1' })).toBe(true)
    expect(inCi({ CI: 'false' })).toBe(false)
  })

  it('draws on a terminal outside CI, whatever stdin is (the keys are then off)', () => {
    const tty = { isTTY: true }
    expect(canDrawLive({}, tty)).toBe(true)
    expect(canDrawLive({ CI: '0' }, tty)).toBe(true)
    expect(canDrawLive({ CI: '' }, tty)).toBe(false)
    expect(canDrawLive({ CONTINUOUS_INTEGRATION: '1' }, tty)).toBe(false)
    expect(canDrawLive({}, { isTTY: false })).toBe(false)
    expect(canDrawLive({}, {})).toBe(false)
  })
})
