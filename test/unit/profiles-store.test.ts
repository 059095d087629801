import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { ggufDigest } from '../../src/core/profiles/digest.js'
import { hardwareFrom } from '../../src/core/profiles/hardware.js'
import type { Profile } from '../../src/core/profiles/schema.js'
import {
  findProfile,
  getProfile,
  listProfiles,
  profileId,
  removeProfile,
  type SkippedProfile,
  writeProfile,
} from '../../src/core/profiles/store.js'
import { here, sampleProfile, there } from './profiles-sample.js'

let dir: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'velo-profiles-'))
})
afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('profile store', () => {
  it('writes YAML atomically under the profiles folder and reads it back', async () => {
    const profile = sampleProfile()
    const file = await writeProfile(profile, { dir })
    expect(file).toBe(join(dir, `${profile.id}.yaml`))
    expect(await readdir(dir)).toEqual([`${profile.id}.yaml`])
    expect(parse(await readFile(file, 'utf8'))).toEqual(profile)
    expect((await getProfile(profile.id, { dir })).profile).toEqual(profile)
    expect((await getProfile('velo-small', { dir })).profile.id).toBe(profile.id)
    expect((await getProfile(profile.id.slice(0, 14), { dir })).profile.id).toBe(profile.id)
  })

  it('keys ids by model digest and hardware fingerprint', () => {
    expect(profileId('velo-small', 'abcdef0123', here)).toBe(
      `velo-small-abcdef01-${here.fingerprint.slice(0, 8)}`,
    )
    expect(profileId('Qwen2.5 7B.gguf', 'abcdef0123', here)).toMatch(/^qwen2.5-7b-abcdef01-/)
    expect(here.fingerprint).not.toBe(there.fingerprint)
  })

  it('names a corrupt file and lists the rest', async () => {
    const good = sampleProfile()
    await writeProfile(good, { dir })
    await writeFile(join(dir, 'broken.yaml'), 'version: 1\nid: [unclosed\n')
    await writeFile(join(dir, 'wrong.yaml'), 'version: 1\nid: wrong\nbackend: vllm\n')
    const list = await listProfiles({ dir })
    expect(list.profiles.map((p) => p.profile.id)).toEqual([good.id])
    expect(list.skipped.map((s) => s.file).sort()).toEqual([
      join(dir, 'broken.yaml'),
      join(dir, 'wrong.yaml'),
    ])
    expect(list.skipped.find((s) => s.file.endsWith('broken.yaml'))?.reason).toMatch(
      /broken\.yaml: not valid YAML/,
    )
    expect(list.skipped.find((s) => s.file.endsWith('wrong.yaml'))?.reason).toMatch(
      /wrong\.yaml: not a valid profile \(.*backend/,
    )
    await expect(getProfile('broken', { dir })).rejects.toThrow(/broken\.yaml: not valid YAML/)
    // A corrupt profile can still be removed by its name.
    expect(await removeProfile('broken', { dir })).toBe(join(dir, 'broken.yaml'))
  })

  it('finds the profile for (model, this machine) and reports other machines’ and corrupt ones', async () => {
    const mine = sampleProfile()
    const theirs = sampleProfile({}, there)
    await writeProfile(mine, { dir })
    await writeProfile(theirs, { dir })
    await writeFile(join(dir, 'broken.yaml'), '{{{')
    const skipped: SkippedProfile[] = []
    const found = await findProfile(mine.model.digest, {
      dir,
      hardware: here,
      onSkip: (s) => skipped.push(s),
    })
    expect(found?.id).toBe(mine.id)
    expect(skipped.map((s) => s.file).sort()).toEqual([
      join(dir, 'broken.yaml'),
      join(dir, `${theirs.id}.yaml`),
    ])
    expect(skipped.find((s) => s.file.includes(theirs.id))?.reason).toMatch(
      /another machine \(Intel Xeon x32/,
    )
    const elsewhere = hardwareFrom({ cpuModel: 'Apple M3', cores: 8, ramBytes: 16 * 1024 ** 3, gpus: [] })
    expect(await findProfile(mine.model.digest, { dir, hardware: elsewhere })).toBeUndefined()
    expect(await findProfile('velo-small', { dir, hardware: here })).toBeUndefined()
  })

  it('finds an Ollama profile by model name, and a GGUF profile by the file’s digest', async () => {
    const ollama = sampleProfile({
      id: 'llama3.2-latest-aaaabbbb-cccc',
      backend: 'ollama',
      model: { name: 'llama3.2:latest', digest: 'aaaabbbbccccdddd', digestMethod: 'ollama' },
    })
    await writeProfile(ollama, { dir })
    expect((await findProfile('llama3.2:latest', { dir, hardware: here }))?.id).toBe(ollama.id)
    const gguf = join(dir, 'model.gguf')
    await writeFile(gguf, Buffer.alloc(3 * 1024 * 1024, 7))
    const digest = await ggufDigest(gguf)
    const byFile = sampleProfile({
      model: { name: 'model', path: gguf, digest, digestMethod: 'gguf-sampled-sha256' },
    })
    byFile.id = profileId('model', digest, here)
    await writeProfile(byFile, { dir })
    expect((await findProfile(gguf, { dir, hardware: here }))?.id).toBe(byFile.id)
  })

  it('rejects a profile that breaks the schema before writing it', async () => {
    const bad = { ...sampleProfile(), parameters: { threads: -1 } } as Profile
    await expect(writeProfile(bad, { dir })).rejects.toThrow()
    expect(await readdir(dir)).toEqual([])
  })
})

describe('model digest', () => {
  it('depends on the bytes beyond the header too', async () => {
    const a = join(dir, 'a.gguf')
    const b = join(dir, 'b.gguf')
    const bytes = Buffer.alloc(20 * 1024 * 1024, 1)
    await writeFile(a, bytes)
    bytes[bytes.length - 1] = 2
    await writeFile(b, bytes)
    expect(await ggufDigest(a)).toMatch(/^[0-9a-f]{64}$/)
    expect(await ggufDigest(a)).not.toBe(await ggufDigest(b))
    await expect(ggufDigest(join(dir, 'missing.gguf'))).rejects.toThrow(/missing\.gguf: cannot read/)
  })
})
