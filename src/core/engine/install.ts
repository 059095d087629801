import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import which from 'which'
import { z } from 'zod'
import { errorMessage, VeloError } from '../errors.js'
import { writeFileAtomic } from '../fs-atomic.js'
import { engineRoot, ensureEngineSource } from './source.js'

export type EngineVariant = 'cpu' | 'cuda'

export interface EngineBuild {
  tag: string
  variant: EngineVariant
  dir: string
  serverPath: string
  benchPath: string
  builtAt: string
}

export interface InstallProgress {
  /** 0-100 while compiling; absent for setup steps. */
  percent?: number
  message: string
}

export interface InstallOptions {
  env?: NodeJS.ProcessEnv
  /** Rebuild even when a cached build exists. */
  force?: boolean
  /** Force or refuse CUDA; by default CUDA is used when `nvcc` is on PATH. */
  cuda?: boolean
  jobs?: number
  onProgress?: (progress: InstallProgress) => void
}

export interface InstallResult extends EngineBuild {
  /** The llama.cpp source checkout (its models/ and vendor/ serve synth and the Ollama build). */
  sourceDir: string
  cached: boolean
  seconds: number
}

const buildSchema = z.object({
  tag: z.string(),
  variant: z.enum(['cpu', 'cuda']),
  dir: z.string(),
  serverPath: z.string(),
  benchPath: z.string(),
  builtAt: z.string(),
})

function buildDir(env: NodeJS.ProcessEnv, tag: string, variant: EngineVariant): string {
  return join(engineRoot(env), `llama.cpp-${tag}-${variant}`)
}

/** The newest finished build in the cache, if any (the stamp file is written only after a build succeeds). */
export async function findCachedBuild(
  env: NodeJS.ProcessEnv = process.env,
  tag?: string,
  variant?: EngineVariant,
): Promise<EngineBuild | undefined> {
  const { readdir } = await import('node:fs/promises')
  const root = engineRoot(env)
  if (!existsSync(root)) return undefined
  const candidates = (await readdir(root)).filter((name) => name.startsWith('llama.cpp-')).sort()
  for (const name of candidates.reverse()) {
    const stamp = join(root, name, 'engine.json')
    if (!existsSync(stamp)) continue
    const parsed = buildSchema.safeParse(JSON.parse(await readFile(stamp, 'utf8')))
    if (!parsed.success) continue
    const build = parsed.data
    if (tag && build.tag !== tag) continue
    if (variant && build.variant !== variant) continue
    if (existsSync(build.serverPath)) return build
  }
  return undefined
}

/** Build llama-server and llama-bench from the pinned llama.cpp source, or reuse the cached build. */
export async function installEngine(options: InstallOptions = {}): Promise<InstallResult> {
  const env = options.env ?? process.env
  const started = performance.now()
  const report = options.onProgress ?? (() => {})
  const source = await ensureEngineSource(env, (message) => report({ message }))
  const nvcc = await which('nvcc', { nothrow: true })
  const variant: EngineVariant = (options.cuda ?? nvcc !== null) ? 'cuda' : 'cpu'
  if (!options.force) {
    const cached = await findCachedBuild(env, source.tag, variant)
    if (cached)
      return { ...cached, sourceDir: source.dir, cached: true, seconds: (performance.now() - started) / 1000 }
  }
  const dir = buildDir(env, source.tag, variant)
  const build = join(dir, 'build')
  const configureArgs = [
    '-S',
    source.dir,
    '-B',
    build,
    '-DCMAKE_BUILD_TYPE=Release',
    '-DLLAMA_CURL=OFF',
    '-DGGML_NATIVE=ON',
    '-DLLAMA_BUILD_TESTS=OFF',
    '-DLLAMA_BUILD_EXAMPLES=OFF',
    `-DGGML_CUDA=${variant === 'cuda' ? 'ON' : 'OFF'}`,
  ]
  const jobs = options.jobs ?? Math.max(1, cpus().length)
  report({ message: `configuring llama.cpp ${source.tag} (${variant})` })
  await runBuildStep('cmake', configureArgs, report)
  report({ message: `compiling llama-server and llama-bench with ${jobs} jobs`, percent: 0 })
  await runBuildStep(
    'cmake',
    ['--build', build, '--config', 'Release', `-j${jobs}`, '--target', 'llama-server', 'llama-bench'],
    report,
  )
  const result: EngineBuild = {
    tag: source.tag,
    variant,
    dir,
    serverPath: join(build, 'bin', 'llama-server'),
    benchPath: join(build, 'bin', 'llama-bench'),
    builtAt: new Date().toISOString(),
  }
  if (!existsSync(result.serverPath)) {
    throw new VeloError('VELO_ENGINE_BUILD_FAILED', `the build finished but ${result.serverPath} is missing`)
  }
  await writeFileAtomic(join(dir, 'engine.json'), `${JSON.stringify(result, null, 2)}\n`)
  return { ...result, sourceDir: source.dir, cached: false, seconds: (performance.now() - started) / 1000 }
}

const PERCENT = /^\[\s*(\d+)%\]\s*(.*)$/

async function runBuildStep(
  command: string,
  args: string[],
  report: (progress: InstallProgress) => void,
): Promise<void> {
  const tail: string[] = []
  const child = execa(command, args, { all: true, buffer: false })
  child.all?.setEncoding('utf8')
  let pending = ''
  child.all?.on('data', (chunk: string) => {
    pending += chunk
    const lines = pending.split('\n')
    pending = lines.pop() ?? ''
    for (const line of lines) {
      tail.push(line)
      if (tail.length > 40) tail.shift()
      const match = PERCENT.exec(line.trim())
      if (match) report({ percent: Number(match[1]), message: match[2] ?? '' })
    }
  })
  try {
    await child
  } catch (error) {
    throw new VeloError(
      'VELO_ENGINE_BUILD_FAILED',
      `${command} ${args.slice(0, 2).join(' ')} failed: ${errorMessage(error).split('\n')[0]}\n${tail.join('\n')}`,
      {
        suggestion: 'install a C++ toolchain and cmake (apt-get install build-essential cmake)',
        cause: error,
      },
    )
  }
}
