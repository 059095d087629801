import { existsSync } from 'node:fs'
import { readdir, readFile, rm } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { parse, stringify } from 'yaml'
import type { z } from 'zod'
import { errorMessage, VeloError } from '../errors.js'
import { writeFileAtomic } from '../fs-atomic.js'
import { profilesDir } from '../paths.js'
import { ggufDigest } from './digest.js'
import { describeHardware, detectHardware, type Hardware } from './hardware.js'
import { type Profile, profileSchema } from './schema.js'

export interface StoredProfile {
  file: string
  profile: Profile
}

export interface SkippedProfile {
  file: string
  reason: string
}

export interface ProfileList {
  profiles: StoredProfile[]
  /** Files that are not valid profiles, each with why; listing goes on without them. */
  skipped: SkippedProfile[]
}

export interface StoreOptions {
  /** The profiles folder; profilesDir() by default. */
  dir?: string
}

function folder(options: StoreOptions): string {
  return options.dir ?? profilesDir()
}

function slug(text: string): string {
  const cleaned = text
    .toLowerCase()
    .replace(/\.gguf$/, '')
    .replace(/[^a-z0-9.]+/g, '-')
    .replace(/^[-.]+|-+$/g, '')
  return cleaned.slice(0, 48) || 'model'
}

/** One id per (model digest, hardware fingerprint): a new optimize run for the pair replaces the old profile. */
export function profileId(modelName: string, digest: string, hardware: Hardware): string {
  return `${slug(modelName)}-${digest.slice(0, 8)}-${hardware.fingerprint.slice(0, 8)}`
}

function issuesText(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`)
    .join('; ')
}

/** Parse one profile file's text; throws VELO_CONFIG_INVALID naming the file and the bad fields. */
export function parseProfile(text: string, file: string): Profile {
  let data: unknown
  try {
    data = parse(text)
  } catch (error) {
    throw new VeloError('VELO_CONFIG_INVALID', `${file}: not valid YAML (${errorMessage(error)})`, {
      suggestion: `remove it with \`velo profiles rm ${basename(file, '.yaml')}\` or run velo optimize again`,
    })
  }
  const result = profileSchema.safeParse(data)
  if (!result.success) {
    throw new VeloError('VELO_CONFIG_INVALID', `${file}: not a valid profile (${issuesText(result.error)})`, {
      suggestion: `remove it with \`velo profiles rm ${basename(file, '.yaml')}\` or run velo optimize again`,
    })
  }
  return result.data
}

export async function writeProfile(profile: Profile, options: StoreOptions = {}): Promise<string> {
  const checked = profileSchema.parse(profile)
  const file = join(folder(options), `${checked.id}.yaml`)
  await writeFileAtomic(file, stringify(checked, { lineWidth: 0 }))
  return file
}

/** Every profile in the folder, newest first; corrupt files are named in `skipped`, never thrown. */
export async function listProfiles(options: StoreOptions = {}): Promise<ProfileList> {
  const dir = folder(options)
  if (!existsSync(dir)) return { profiles: [], skipped: [] }
  const names = (await readdir(dir)).filter((name) => name.endsWith('.yaml') && !name.startsWith('.'))
  const profiles: StoredProfile[] = []
  const skipped: SkippedProfile[] = []
  for (const name of names.sort()) {
    const file = join(dir, name)
    try {
      profiles.push({ file, profile: parseProfile(await readFile(file, 'utf8'), file) })
    } catch (error) {
      skipped.push({ file, reason: errorMessage(error) })
    }
  }
  profiles.sort((a, b) => b.profile.createdAt.localeCompare(a.profile.createdAt))
  return { profiles, skipped }
}

/**
 * The profile with this id, or the only one whose id starts with it or whose model name equals it.
 * A corrupt file with exactly this id is reported as such, by name.
 */
export async function getProfile(query: string, options: StoreOptions = {}): Promise<StoredProfile> {
  const exact = join(folder(options), `${query}.yaml`)
  if (/^[a-z0-9][a-z0-9._-]*$/.test(query) && existsSync(exact)) {
    return { file: exact, profile: parseProfile(await readFile(exact, 'utf8'), exact) }
  }
  const { profiles } = await listProfiles(options)
  const matches = profiles.filter(
    ({ profile }) => profile.id.startsWith(query) || profile.model.name === query,
  )
  if (matches.length === 1 && matches[0]) return matches[0]
  if (matches.length > 1) {
    throw new VeloError(
      'VELO_BAD_REQUEST',
      `${query} matches ${matches.length} profiles: ${matches.map((m) => m.profile.id).join(', ')}`,
      { suggestion: 'pass a full profile id (see `velo profiles list`)' },
    )
  }
  throw new VeloError('VELO_NOT_FOUND', `no profile ${query} in ${folder(options)}`, {
    suggestion: 'see `velo profiles list`, or create one with `velo optimize`',
  })
}

export async function removeProfile(query: string, options: StoreOptions = {}): Promise<string> {
  const exact = join(folder(options), `${query}.yaml`)
  // A corrupt file must still be removable, so an exact file name wins before parsing anything.
  const file =
    /^[a-z0-9][a-z0-9._-]*$/.test(query) && existsSync(exact)
      ? exact
      : (await getProfile(query, options)).file
  await rm(file)
  return file
}

export interface FindOptions extends StoreOptions {
  /** The machine to match; this one by default. */
  hardware?: Hardware
  /** Only profiles for this backend. */
  backend?: Profile['backend']
  /** Told about every file passed over: corrupt, or for this model on another machine. */
  onSkip?: (skipped: SkippedProfile) => void
}

let thisMachine: Promise<Hardware> | undefined

/**
 * The profile for a model on this hardware: `model` is a GGUF path, a digest (hex), or an Ollama
 * model name. Corrupt profiles and this model's profiles for other machines are reported through
 * `onSkip` and passed over, never thrown.
 */
export async function findProfile(model: string, options: FindOptions = {}): Promise<Profile | undefined> {
  thisMachine ??= detectHardware()
  const hardware = options.hardware ?? (await thisMachine)
  let digest: string | undefined
  if (/^[0-9a-f]{12,64}$/.test(model)) digest = model
  else if (existsSync(model)) digest = await ggufDigest(model)
  const { profiles, skipped } = await listProfiles(options)
  for (const entry of skipped) options.onSkip?.(entry)
  const forModel = profiles.filter(({ profile }) => {
    if (options.backend && profile.backend !== options.backend) return false
    if (digest) return profile.model.digest === digest || profile.model.digest.startsWith(digest)
    return profile.backend === 'ollama' && profile.model.name === model
  })
  const match = forModel.find(({ profile }) => profile.hardware.fingerprint === hardware.fingerprint)
  for (const entry of forModel) {
    if (entry === match) continue
    if (entry.profile.hardware.fingerprint !== hardware.fingerprint) {
      options.onSkip?.({
        file: entry.file,
        reason: `made on another machine (${describeHardware(entry.profile.hardware)})`,
      })
    }
  }
  return match?.profile
}
