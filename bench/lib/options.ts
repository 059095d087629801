import { parseArgs } from 'node:util'

export const SECTIONS = [1, 2, 3, 4, 5] as const
export type Section = (typeof SECTIONS)[number]

export interface PerfOptions {
  sections: Set<Section>
  quick: boolean
  /** Seconds each load run measures (sections 1-3), after a warm-up. */
  runSeconds: number
  warmupSeconds: number
  /** Seconds each side of the real-engine comparison measures. */
  engineSeconds: number
  /** Seconds each side of the model-affinity comparison measures. */
  affinitySeconds: number
  /** Closed-loop clients in the model-affinity comparison (each alternates the two models). */
  affinityClients: number
  /** Entry counts for the semantic lookup bench. */
  semanticSizes: number[]
  /** Seconds the semantic bench may spend building indexes; larger sizes are skipped past it. */
  semanticBudgetSeconds: number
  concurrency: number[]
  /** Rounds per comparison in sections 1, 2 and 4, in mirrored target order; each gets 1/rounds of the time. */
  rounds: number
  /** Start velo under `node --cpu-prof` writing into this folder. */
  cpuProfDir: string | undefined
  /** Where the report goes; undefined: do not write it. */
  out: string | undefined
  help: boolean
}

export const USAGE = `npm run perf -- [options]

  --quick                 short runs (about 2 minutes in all on a quiet machine) for a first look
  --only 1,2              run only these sections (1 non-streaming, 2 streaming, 3 cache,
                          4 real engine, 5 model affinity)
  --duration S            seconds per load run in sections 1-3 (default 5; --quick 1.5)
  --engine-duration S     seconds per side in section 4 (default 16; --quick 8)
  --affinity-duration S   seconds per side in section 5 (default 30; --quick 20)
  --affinity-clients N    clients in section 5, each alternating the two models (default 8,
                          as many as section 4's)
  --concurrency 1,32      client counts for section 1
  --rounds N              split each comparison in sections 1, 2 and 4 into N rounds that run the
                          targets in mirrored order (A B C, C B A) and pool them (default 2;
                          --quick 1), so drifting load on the machine favours no target
  --semantic-sizes N,M    semantic index sizes (default 10000,100000)
  --semantic-budget S     seconds the semantic index may take to build before larger sizes are
                          skipped with an estimate (default 300; --full lifts it)
  --full                  no semantic build budget
  --cpu-prof [--cpu-prof-dir DIR]
                          after the measurements, run a second velo under node --cpu-prof with
                          section 1's and 2's loads; the profile lands in DIR (default a new
                          folder under the system temp dir) and its hottest functions are printed
  --out FILE              where the report goes (default docs/performance.md)
  --no-write              print only, do not write the report
  -h, --help`

function positiveNumber(flag: string, raw: string): number {
  const value = Number(raw)
  if (!Number.isFinite(value) || value <= 0) {
    throw new Error(`--${flag}: expected a positive number, got "${raw}"`)
  }
  return value
}

function positiveInteger(flag: string, raw: string): number {
  const value = Number(raw)
  if (!Number.isInteger(value) || value <= 0)
    throw new Error(`--${flag}: expected a positive integer, got "${raw}"`)
  return value
}

function integerList(flag: string, raw: string): number[] {
  const parts = raw.split(',').map((part) => part.trim())
  const values = parts.map(Number)
  if (parts.length === 0 || values.some((value) => !Number.isInteger(value) || value <= 0)) {
    throw new Error(`--${flag}: expected positive integers separated by commas, got "${raw}"`)
  }
  return values
}

/** The harness's flags; throws an Error naming the flag and what it expected on bad input. */
export function parseOptions(argv: string[], defaults: { tmpdir: string; now: Date }): PerfOptions {
  let parsed: ReturnType<typeof parse>
  try {
    parsed = parse(argv)
  } catch (error) {
    throw new Error(error instanceof Error ? error.message : String(error))
  }
  const v = parsed.values
  const quick = v.quick === true
  let sections = new Set<Section>(SECTIONS)
  if (v.only !== undefined) {
    const wanted = integerList('only', v.only)
    const bad = wanted.filter((n) => !(SECTIONS as readonly number[]).includes(n))
    if (bad.length > 0) throw new Error(`--only: expected section numbers 1-5, got "${v.only}"`)
    sections = new Set(wanted as Section[])
  }
  const stamp = defaults.now.toISOString().replace(/[:.]/g, '-')
  const cpuProfDir =
    v['cpu-prof-dir'] !== undefined
      ? v['cpu-prof-dir']
      : v['cpu-prof'] === true
        ? `${defaults.tmpdir}/velo-perf-cpu-prof-${stamp}`
        : undefined
  return {
    sections,
    quick,
    runSeconds: v.duration !== undefined ? positiveNumber('duration', v.duration) : quick ? 1.5 : 5,
    warmupSeconds: quick ? 0.3 : 0.5,
    engineSeconds:
      v['engine-duration'] !== undefined
        ? positiveNumber('engine-duration', v['engine-duration'])
        : quick
          ? 8
          : 16,
    affinitySeconds:
      v['affinity-duration'] !== undefined
        ? positiveNumber('affinity-duration', v['affinity-duration'])
        : quick
          ? 20
          : 30,
    affinityClients:
      v['affinity-clients'] !== undefined ? positiveInteger('affinity-clients', v['affinity-clients']) : 8,
    semanticSizes:
      v['semantic-sizes'] !== undefined
        ? integerList('semantic-sizes', v['semantic-sizes'])
        : [10_000, 100_000],
    semanticBudgetSeconds:
      v.full === true
        ? Number.POSITIVE_INFINITY
        : v['semantic-budget'] !== undefined
          ? positiveNumber('semantic-budget', v['semantic-budget'])
          : quick
            ? 20
            : 300,
    concurrency: v.concurrency !== undefined ? integerList('concurrency', v.concurrency) : [1, 32],
    rounds: v.rounds !== undefined ? positiveInteger('rounds', v.rounds) : quick ? 1 : 2,
    cpuProfDir,
    out: v['no-write'] === true ? undefined : (v.out ?? 'docs/performance.md'),
    help: v.help === true,
  }
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      quick: { type: 'boolean' },
      full: { type: 'boolean' },
      only: { type: 'string' },
      duration: { type: 'string' },
      'engine-duration': { type: 'string' },
      'affinity-duration': { type: 'string' },
      'affinity-clients': { type: 'string' },
      concurrency: { type: 'string' },
      rounds: { type: 'string' },
      'semantic-sizes': { type: 'string' },
      'semantic-budget': { type: 'string' },
      'cpu-prof': { type: 'boolean' },
      'cpu-prof-dir': { type: 'string' },
      out: { type: 'string' },
      'no-write': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  })
}
