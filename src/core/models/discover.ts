import type { Dirent } from 'node:fs'
import { readdir, readFile, realpath, stat } from 'node:fs/promises'
import { homedir } from 'node:os'
import { basename, dirname, join, resolve } from 'node:path'
import { readGgufHeader } from '../detect/gguf-header.js'
import { errorMessage } from '../errors.js'
import { type GgufSummary, readGguf } from '../gguf/read.js'
import { cacheDir, expandHome } from '../paths.js'

/** Where a model was found; the order here is the order of precedence when two share an id. */
export type ModelSource = 'models-dir' | 'velo' | 'lm-studio' | 'llama.cpp' | 'huggingface' | 'ollama'

export interface DiscoveredModel {
  /** The file name without `.gguf` (and without `-00001-of-0000N` for split models); the Ollama name for Ollama blobs. */
  id: string
  path: string
  source: ModelSource
  /** Bytes on disk, all shards of a split model together. */
  fileBytes: number
  /** `name:tag` for a model found in Ollama's store, else null. */
  ollamaName: string | null
  /** Mixture of experts: how many experts each layer has and how many run per token. */
  experts: { count: number; used: number } | null
  summary: GgufSummary
}

export interface DiscoveryProblem {
  path: string
  error: string
}

export interface DiscoverOptions {
  /** Extra folders to search (`--models-dir`, `managed.modelsDirs`); searched first. */
  modelsDirs?: string[]
  env?: NodeJS.ProcessEnv
  /** Also search the usual places (LM Studio, llama.cpp, Hugging Face, Ollama, velo's cache). Default true. */
  usualPlaces?: boolean
  /** A file or folder that could not be read; discovery goes on without it. */
  onProblem?: (problem: DiscoveryProblem) => void
}

interface Root {
  dir: string
  source: ModelSource
}

/** How deep to look below a root: LM Studio nests publisher/repo, the HF cache models--x/snapshots/rev. */
const MAX_DEPTH = 5
/** Stop walking a root after this many directory entries, so a huge tree never stalls detection. */
const MAX_ENTRIES = 50_000
const READ_CONCURRENCY = 8
const SHARD = /-(\d{5})-of-(\d{5})\.gguf$/i

function home(env: NodeJS.ProcessEnv): string {
  return env['HOME'] || homedir()
}

function xdgCache(env: NodeJS.ProcessEnv): string {
  return env['XDG_CACHE_HOME'] || join(home(env), '.cache')
}

/** The usual places other tools keep GGUF files, most specific first. */
export function usualModelRoots(env: NodeJS.ProcessEnv = process.env): Root[] {
  const h = home(env)
  const roots: Root[] = [{ dir: join(cacheDir(env), 'models'), source: 'velo' }]
  roots.push(
    { dir: join(h, '.lmstudio', 'models'), source: 'lm-studio' },
    { dir: join(h, '.cache', 'lm-studio', 'models'), source: 'lm-studio' },
  )
  const llamaCache = env['LLAMA_CACHE']
  if (llamaCache) roots.push({ dir: llamaCache, source: 'llama.cpp' })
  roots.push({ dir: join(xdgCache(env), 'llama.cpp'), source: 'llama.cpp' })
  if (process.platform === 'darwin') {
    roots.push({ dir: join(h, 'Library', 'Caches', 'llama.cpp'), source: 'llama.cpp' })
  }
  const hfHub =
    env['HF_HUB_CACHE'] ||
    (env['HF_HOME'] ? join(env['HF_HOME'], 'hub') : join(xdgCache(env), 'huggingface', 'hub'))
  roots.push({ dir: hfHub, source: 'huggingface' })
  return roots
}

/** Ollama's model stores: `OLLAMA_MODELS`, else the user's, plus the Linux service's. */
export function ollamaModelRoots(env: NodeJS.ProcessEnv = process.env): string[] {
  if (env['OLLAMA_MODELS']) return [expandHome(env['OLLAMA_MODELS'])]
  const roots = [join(home(env), '.ollama', 'models')]
  if (process.platform === 'linux') roots.push('/usr/share/ollama/.ollama/models')
  return roots
}

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code
  return code === 'ENOENT' || code === 'ENOTDIR'
}

async function listDir(dir: string, report: (problem: DiscoveryProblem) => void): Promise<Dirent[]> {
  try {
    return await readdir(dir, { withFileTypes: true })
  } catch (error) {
    if (!isMissing(error)) report({ path: dir, error: errorMessage(error) })
    return []
  }
}

/** Every `.gguf` file below `root` (symlinks followed, as the Hugging Face cache links to its blobs). */
async function findGgufFiles(root: string, report: (problem: DiscoveryProblem) => void): Promise<string[]> {
  const found: string[] = []
  let seen = 0
  const walk = async (dir: string, depth: number): Promise<void> => {
    for (const entry of await listDir(dir, report)) {
      if (++seen > MAX_ENTRIES) return
      if (entry.name.startsWith('.')) continue
      const path = join(dir, entry.name)
      let isDir = entry.isDirectory()
      let isFile = entry.isFile()
      if (entry.isSymbolicLink()) {
        const target = await stat(path).catch(() => undefined)
        isDir = target?.isDirectory() ?? false
        isFile = target?.isFile() ?? false
      }
      if (isFile && entry.name.toLowerCase().endsWith('.gguf')) found.push(path)
      else if (isDir && depth < MAX_DEPTH && entry.name !== 'node_modules' && entry.name !== 'blobs') {
        await walk(path, depth + 1)
      }
    }
  }
  await walk(root, 0)
  return found.sort()
}

interface Candidate {
  path: string
  source: ModelSource
  id: string
  ollamaName: string | null
}

/** Split models (`x-00001-of-00003.gguf`): only the first shard stands for the model. */
function candidateFor(path: string, source: ModelSource): Candidate | undefined {
  const name = basename(path)
  const shard = SHARD.exec(name)
  if (shard && Number(shard[1]) !== 1) return undefined
  const id = shard ? name.slice(0, shard.index) : name.replace(/\.gguf$/i, '')
  return { path, source, id, ollamaName: null }
}

/** `registry.ollama.ai/library/llama3.2/3b` -> `llama3.2:3b`, other namespaces and hosts kept as Ollama shows them. */
export function ollamaNameOf(parts: string[]): string {
  const [host, namespace, model, tag] = parts
  if (host === 'registry.ollama.ai' && namespace === 'library') return `${model}:${tag}`
  if (host === 'registry.ollama.ai') return `${namespace}/${model}:${tag}`
  return `${host}/${namespace}/${model}:${tag}`
}

const OLLAMA_MODEL_LAYER = 'application/vnd.ollama.image.model'

/** Models in an Ollama store: manifests/<host>/<namespace>/<model>/<tag> name a GGUF blob by digest. */
async function ollamaCandidates(
  root: string,
  report: (problem: DiscoveryProblem) => void,
): Promise<Candidate[]> {
  const manifests = join(root, 'manifests')
  const candidates: Candidate[] = []
  const walk = async (dir: string, parts: string[]): Promise<void> => {
    for (const entry of await listDir(dir, report)) {
      const path = join(dir, entry.name)
      if (parts.length < 3) {
        if (entry.isDirectory()) await walk(path, [...parts, entry.name])
        continue
      }
      if (!entry.isFile()) continue
      let digest: string | undefined
      try {
        const manifest = JSON.parse(await readFile(path, 'utf8')) as {
          layers?: Array<{ mediaType?: string; digest?: string }>
        }
        digest = manifest.layers?.find((layer) => layer.mediaType === OLLAMA_MODEL_LAYER)?.digest
      } catch (error) {
        report({ path, error: `not a readable Ollama manifest (${errorMessage(error)})` })
        continue
      }
      if (!digest) continue
      const name = ollamaNameOf([...parts, entry.name])
      candidates.push({
        path: join(root, 'blobs', digest.replace(':', '-')),
        source: 'ollama',
        id: name,
        ollamaName: name,
      })
    }
  }
  await walk(manifests, [])
  return candidates.sort((a, b) => a.id.localeCompare(b.id))
}

async function shardBytes(path: string, firstBytes: number): Promise<number> {
  const shard = SHARD.exec(basename(path))
  if (!shard) return firstBytes
  const count = Number(shard[2])
  const prefix = basename(path).slice(0, shard.index)
  let total = firstBytes
  for (let i = 2; i <= count; i++) {
    const name = `${prefix}-${String(i).padStart(5, '0')}-of-${shard[2]}.gguf`
    total += (await stat(join(dirname(path), name)).catch(() => undefined))?.size ?? 0
  }
  return total
}

/**
 * The lean header reader (no tokenizer decoding); readGguf for what it does not handle, so a file
 * that is not a model fails with readGguf's message.
 */
async function readHeader(path: string): Promise<{ summary: GgufSummary; count: number; used: number }> {
  try {
    const { summary, metadata } = await readGgufHeader(path)
    const value = (key: string): number => {
      const v = metadata[`${summary.architecture}.${key}`]
      return typeof v === 'number' || typeof v === 'bigint' ? Number(v) : 0
    }
    return { summary, count: value('expert_count'), used: value('expert_used_count') }
  } catch {
    const { summary, metadata } = await readGguf(path)
    const value = (key: string): number => Number(metadata[`${summary.architecture}.${key}`]?.value ?? 0)
    return { summary, count: value('expert_count'), used: value('expert_used_count') }
  }
}

async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const at = next++
      results[at] = await fn(items[at] as T)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return results
}

/**
 * GGUF models in `modelsDirs` and the usual places, with their header summaries. Header reads only
 * (fast); a file that cannot be read goes to `onProblem` and is left out. Vocab-only files (no
 * tensors) and vision projectors (`clip`) are not models and are left out too. The same file reached
 * twice (symlinks, a folder listed twice) appears once, except that every Ollama name of a blob is
 * listed; when two files share an id, the earlier source in ModelSource's order comes first.
 */
export async function discoverModels(options: DiscoverOptions = {}): Promise<DiscoveredModel[]> {
  const env = options.env ?? process.env
  const report = options.onProblem ?? (() => {})
  const roots: Root[] = (options.modelsDirs ?? []).map((dir) => ({
    dir: resolve(expandHome(dir)),
    source: 'models-dir' as const,
  }))
  if (options.usualPlaces ?? true) roots.push(...usualModelRoots(env))
  const fileLists = await Promise.all(
    roots.map(async (root) =>
      (await findGgufFiles(root.dir, report))
        .map((path) => candidateFor(path, root.source))
        .filter((c): c is Candidate => c !== undefined),
    ),
  )
  const candidates = fileLists.flat()
  if (options.usualPlaces ?? true) {
    for (const root of ollamaModelRoots(env)) candidates.push(...(await ollamaCandidates(root, report)))
  }
  const seen = new Set<string>()
  const unique: Candidate[] = []
  for (const candidate of candidates) {
    // Ollama gives one blob several names (`llama3.2:latest`, `llama3.2:3b`): each name is a model.
    const key =
      candidate.source === 'ollama'
        ? `ollama:${candidate.id}`
        : await realpath(candidate.path).catch(() => candidate.path)
    if (seen.has(key)) continue
    seen.add(key)
    unique.push(candidate)
  }
  const models = await mapLimit(unique, READ_CONCURRENCY, async (candidate) => {
    try {
      const { summary, count, used } = await readHeader(candidate.path)
      if (summary.tensors.length === 0 || summary.architecture === 'clip') return undefined
      const model: DiscoveredModel = {
        id: candidate.id,
        path: candidate.path,
        source: candidate.source,
        fileBytes: await shardBytes(candidate.path, summary.fileBytes),
        ollamaName: candidate.ollamaName,
        experts: count > 0 && used > 0 ? { count, used } : null,
        summary,
      }
      return model
    } catch (error) {
      report({ path: candidate.path, error: errorMessage(error) })
      return undefined
    }
  })
  return models.filter((model): model is DiscoveredModel => model !== undefined)
}
