import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  ollamaUrl,
  portsFromEnv,
  probeLlamaServer,
  probeOllama,
  probeVelo,
} from '../../src/core/detect/backends.js'
import { measureMemoryBandwidth } from '../../src/core/detect/bandwidth.js'
import { freePort } from '../../src/core/process/supervise.js'

describe('OLLAMA_HOST', () => {
  it.each([
    [undefined, 'http://127.0.0.1:11434'],
    ['', 'http://127.0.0.1:11434'],
    ['0.0.0.0', 'http://127.0.0.1:11434'],
    ['0.0.0.0:11500', 'http://127.0.0.1:11500'],
    [':11600', 'http://127.0.0.1:11600'],
    ['gpu-box', 'http://gpu-box:11434'],
    ['gpu-box:9000', 'http://gpu-box:9000'],
    ['http://gpu-box', 'http://gpu-box:80'],
    ['https://ollama.example.com', 'https://ollama.example.com:443'],
    ['http://10.0.0.5:11434/', 'http://10.0.0.5:11434'],
    ['[::]:11434', 'http://[::1]:11434'],
    ['  127.0.0.1:1234  ', 'http://127.0.0.1:1234'],
  ])('%s -> %s', (host, url) => {
    expect(ollamaUrl(host === undefined ? {} : { OLLAMA_HOST: host })).toBe(url)
  })
})

describe('VELO_DETECT_PORTS', () => {
  it('reads a comma list and drops what is not a port', () => {
    expect(portsFromEnv({ VELO_DETECT_PORTS: '9000, 9001,abc,0,70000,' })).toEqual([9000, 9001])
    expect(portsFromEnv({})).toEqual([])
  })
})

// Something that is not llama-server, Ollama or velo, answering on a probed port: a web app on 8080.
let other: Server
let otherPort: number
beforeAll(async () => {
  other = createServer((req, res) => {
    if (req.url === '/health') {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end('{"healthy":true}')
      return
    }
    res.writeHead(200, { 'content-type': 'text/html' })
    res.end('<html>hello</html>')
  })
  await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve))
  otherPort = (other.address() as AddressInfo).port
})
async function closeOther(): Promise<void> {
  if (!other.listening) return
  other.closeAllConnections()
  await new Promise<void>((resolve) => other.close(() => resolve()))
}
afterAll(closeOther)

describe('probing servers that are something else', () => {
  it('does not take another HTTP service for a llama-server', async () => {
    expect(await probeLlamaServer(otherPort)).toBeUndefined()
  })

  it('says an Ollama URL that answers HTML is not Ollama', async () => {
    const result = await probeOllama(`http://127.0.0.1:${otherPort}`)
    expect(result.reachable).toBe(false)
    expect(result.error).toMatch(/not like Ollama/)
  })

  it('does not take another HTTP service for a velo', async () => {
    expect(await probeVelo(`http://127.0.0.1:${otherPort}`)).toBeNull()
  })

  it('reports a port nothing listens on as connection refused', async () => {
    const closed = await freePort()
    const result = await probeOllama(`http://127.0.0.1:${closed}`)
    expect(result).toMatchObject({ reachable: false, error: 'connection refused', models: [], loaded: [] })
    expect(await probeLlamaServer(closed)).toBeUndefined()
  })
})

describe('memory bandwidth probe', () => {
  it('measures a positive rate with the threads it was given', async () => {
    const result = await measureMemoryBandwidth({ threads: 1, bufferBytes: 8 * 1024 ** 2, windowMs: 50 })
    expect(result.error).toBeNull()
    expect(result.measured?.threads).toBe(1)
    expect(result.measured?.gbPerSecond).toBeGreaterThan(0)
  })

  it('gives up with a reason, not a hang, when it cannot finish by the deadline', async () => {
    const result = await measureMemoryBandwidth({
      threads: 1,
      bufferBytes: 8 * 1024 ** 2,
      windowMs: 5000,
      deadlineMs: 100,
    })
    expect(result.measured).toBeNull()
    expect(result.error).toMatch(/did not finish within 100 ms/)
  })
})
