import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa, type ResultPromise } from 'execa'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort, waitUntil } from '../../src/core/process/supervise.js'
import { VELO_BIN } from '../helpers/cli.js'
import { lacks, required, rig } from '../helpers/rig.js'

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Processes whose parent is `ppid`, with their command lines. */
async function childrenOf(ppid: number): Promise<{ pid: number; args: string }[]> {
  const { stdout } = await execa('ps', ['-eo', 'pid=,ppid=,args='])
  return stdout
    .split('\n')
    .map((line) => /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(line))
    .filter((match): match is RegExpExecArray => match !== null && Number(match[2]) === ppid)
    .map((match) => ({ pid: Number(match[1]), args: match[3] ?? '' }))
}

describe.skipIf(lacks('llama-server'))('velo serve SIGKILLed (the built CLI)', () => {
  let dir: string
  let serve: ResultPromise<{ reject: false }> | undefined
  const guarded: number[] = []

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'velo-orphans-'))
  })
  afterAll(async () => {
    serve?.kill('SIGKILL')
    // Whatever the outcome, leave nothing running.
    for (const pid of guarded.filter(alive)) process.kill(pid, 'SIGKILL')
    await rm(dir, { recursive: true, force: true })
  })

  it('leaves no llama-server behind: the child notices velo is gone', async () => {
    const config = join(dir, 'velo.yaml')
    const tiny = required(rig().tinyModel, 'tiny model')
    await writeFile(
      config,
      `managed:\n  models:\n    orphan-check:\n      path: ${JSON.stringify(tiny)}\n      args: ["--ctx-size", "1024", "--parallel", "1"]\n`,
    )
    const port = await freePort()
    const url = `http://127.0.0.1:${port}`
    const proc = execa(
      process.execPath,
      [VELO_BIN, 'serve', '--config', config, '--port', String(port), '--no-tui', '--no-detect-ollama'],
      { reject: false, env: { ...process.env, CI: '' } },
    )
    serve = proc
    await waitUntil(
      async () => {
        if (proc.exitCode !== null && proc.exitCode !== undefined) throw new Error('velo serve exited')
        return (await fetch(`${url}/health`)).ok
      },
      { timeoutMs: 120_000, what: 'velo serve' },
    )
    const openai = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 })
    const completion = await openai.chat.completions.create({
      model: 'orphan-check',
      messages: [{ role: 'user', content: 'Hi' }],
      max_tokens: 4,
    })
    expect(completion.choices).toHaveLength(1)

    const veloPid = required(proc.pid, 'velo pid')
    const children = await childrenOf(veloPid)
    const server = children.find((child) => child.args.includes('llama-server'))
    const reaper = children.find((child) => child.args.startsWith('/bin/sh -c'))?.pid
    const serverPid = required(server?.pid, 'llama-server pid')
    guarded.push(serverPid, ...(reaper === undefined ? [] : [reaper]))
    expect(alive(serverPid)).toBe(true)

    proc.kill('SIGKILL')
    const result = await proc
    expect(result.signal).toBe('SIGKILL')
    // No exit hook ran in velo; the llama-server still goes within seconds.
    await waitUntil(async () => !alive(serverPid), {
      timeoutMs: 10_000,
      intervalMs: 50,
      what: 'llama-server to exit after velo was SIGKILLed',
    })
    // The reaper that took it down (velo's other child) is gone too.
    const reaperPid = required(reaper, 'reaper pid')
    await waitUntil(async () => !alive(reaperPid), {
      timeoutMs: 10_000,
      intervalMs: 50,
      what: 'the reaper to exit',
    })
  })
})
