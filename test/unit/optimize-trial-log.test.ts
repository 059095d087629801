import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { type RunIdentity, runKey, TrialLog, type TrialRecord } from '../../src/core/optimize/trial-log.js'

let dir: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'velo-trials-'))
})
afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})

const identity: RunIdentity = {
  modelDigest: 'abc',
  hardwareFingerprint: 'def',
  goal: 'speed',
  backend: 'llama-server',
}

function record(seq: number, key: string, occurrence = 0): TrialRecord {
  return {
    type: 'trial',
    seq,
    phase: seq === 1 ? 'baseline' : 'search',
    key,
    occurrence,
    params: { threads: seq },
    measurement: { value: 10 * seq, samples: [10 * seq], score: 10 * seq, feasible: true },
    startedAt: new Date(0).toISOString(),
    seconds: 1,
  }
}

describe('trial log', () => {
  it('is keyed by model digest, hardware and goal', () => {
    expect(runKey(identity)).toBe(runKey({ ...identity }))
    expect(runKey({ ...identity, goal: 'latency' })).not.toBe(runKey(identity))
    expect(runKey({ ...identity, hardwareFingerprint: 'xyz' })).not.toBe(runKey(identity))
    expect(runKey({ ...identity, modelDigest: 'abd' })).not.toBe(runKey(identity))
  })

  it('gives an interrupted run’s finished trials back to the next run', async () => {
    const { log } = await TrialLog.open(identity, { dir })
    await log.append(record(1, 'a'))
    await log.append(record(2, 'b'))
    await log.append(record(3, 'a', 1))
    const again = await TrialLog.open(identity, { dir })
    expect(again.resumed).toBe(3)
    expect(again.log.get('a', 0)?.measurement?.value).toBe(10)
    expect(again.log.get('a', 1)?.measurement?.value).toBe(30)
    expect(again.log.get('b', 1)).toBeUndefined()
    // Only the log, no temporary files left behind by the atomic writes.
    expect(await readdir(dir)).toEqual([`${runKey(identity)}.jsonl`])
  })

  it('skips a line cut short by a kill and keeps the rest', async () => {
    const { log } = await TrialLog.open(identity, { dir })
    await log.append(record(1, 'a'))
    await log.append(record(2, 'b'))
    const text = await readFile(log.file, 'utf8')
    await writeFile(log.file, text.slice(0, text.length - 40))
    const again = await TrialLog.open(identity, { dir })
    expect(again.resumed).toBe(1)
    expect(again.damagedLines).toBe(1)
    await again.log.append(record(2, 'b'))
    const lines = (await readFile(log.file, 'utf8')).trim().split('\n')
    expect(lines.map((line) => JSON.parse(line).type)).toEqual(['run', 'trial', 'trial'])
  })

  it('starts over after a finished run, or when told to', async () => {
    const { log } = await TrialLog.open(identity, { dir })
    await log.append(record(1, 'a'))
    const fresh = await TrialLog.open(identity, { dir, mode: 'fresh' })
    expect(fresh.resumed).toBe(0)
    await fresh.log.append(record(1, 'a'))
    await fresh.log.finish('/profiles/p.yaml')
    expect((await TrialLog.open(identity, { dir })).resumed).toBe(0)
    // --resume still replays a finished run (to rewrite its profile without measuring).
    expect((await TrialLog.open(identity, { dir, mode: 'require' })).resumed).toBe(1)
  })

  it('refuses --resume when there is nothing to resume', async () => {
    await expect(TrialLog.open(identity, { dir, mode: 'require' })).rejects.toThrow(/no earlier optimize run/)
  })
})
