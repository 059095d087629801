/** docs/performance.md, rendered from one run of `npm run perf` (the page is regenerated, not edited). */
import type { ProfileSummary } from './cpu-profile.js'
import type { MachineInfo } from './machine.js'
import { USAGE } from './options.js'
import { markdownTable, type Row, tally, verdictMarkdown } from './report.js'

export interface SectionReport {
  number: number
  title: string
  headers: string[]
  rows: string[][]
  notes: string[]
}

export interface DocInput {
  date: Date
  command: string
  machine: MachineInfo
  verdicts: Row[]
  sections: SectionReport[]
  notes: string[]
  profile: { file: string; summary: ProfileSummary } | undefined
}

const pct = (share: number) => `${(share * 100).toFixed(1)}%`

export function profileTables(summary: ProfileSummary): {
  top: string[][]
  owners: string[][]
  origins: string[][]
} {
  return {
    top: summary.top.map((fn) => [fn.name, fn.location || fn.origin, fn.selfMs.toFixed(0), pct(fn.share)]),
    owners: summary.owners.map((fn) => [fn.name, fn.location, fn.selfMs.toFixed(0), pct(fn.share)]),
    origins: summary.byOrigin.slice(0, 12).map((o) => [o.origin, o.selfMs.toFixed(0), pct(o.share)]),
  }
}

const METHOD = `## How it measures

- Every process runs on its own free port and in its own process group, and all are stopped at the
  end and on Ctrl-C: the bench upstream (\`bench/upstream.ts\`, node:http), \`velo serve\` from the built
  CLI (\`node bin/run.js serve --no-tui --log-format json\`, with a generated config so the user's
  \`velo.yaml\` does not leak in), the Portkey gateway from npm (\`--headless\`, with
  \`x-portkey-provider: openai\` and \`x-portkey-custom-host\`), and llama-server with velo's small
  synthetic model.
- The load generator (\`bench/loadgen.ts\`) is a separate process for every run: an undici Pool with one
  connection per client, a closed loop (each client sends its next request when the last one ends),
  a warm-up that is discarded, then a fixed duration. Latency is \`process.hrtime.bigint()\` from before
  the request to the end of the body.
- Section 1 sends \`temperature: 0.7\` so velo's exact cache cannot answer (the \`x-velo-cache\`
  header of every response is counted to make sure); section 3 sends \`temperature: 0\` and the same
  body every time, so everything after the first request is a hit. Sections 1 and 2 also measure
  bench/node-proxy.ts ("node proxy"): node:http in front of an undici Pool and nothing else (a plain
  answer sent back in one write, a stream passed on chunk by chunk), the floor a proxy written in
  Node starts from on the same machine; velo's own work is what it adds beyond that. Where velo
  misses a latency target, the detail column gives the floor's figure from the same run.
- Section 2: time to first byte comes from streams of one chunk (\`max_tokens: 1\`, which the upstream
  honours), many per second, timed to the first body byte. Per-chunk latency comes from streams of 200
  chunks the upstream writes 1 ms apart, each carrying the monotonic clock (\`CLOCK_MONOTONIC\`, one
  clock for all processes) at the moment it was written; the client subtracts it from the arrival
  time, which gives the one-way latency of every chunk. Per-chunk added latency is velo's p50
  one-way latency minus the direct p50.
- Section 3's semantic lookup calls velo's \`SemanticIndex\` (\`src/proxy/cache\`) directly in its own
  process with clustered 384-dimensional vectors in one namespace, queries being near-duplicates of
  stored vectors; the embedding call is excluded. Sizes whose build would overrun the budget are
  skipped with an estimate.
- Section 4: 8 streaming clients, \`max_tokens\` 64 with \`ignore_eos\`, against llama-server
  (\`--parallel 8\`) directly and through velo; tokens come from the stream's \`usage\`.
- Section 5: velo manages the tiny and the small synthetic model with \`maxLoaded: 1\`; 8 clients
  (\`--affinity-clients\`) send requests that alternate between the two models. Velo with model affinity is compared with velo
  forwarding in arrival order.
- Sections 1, 2 and 4 measure in rounds (\`--rounds\`, 2 by default): the targets run in mirrored
  order (direct, velo, Portkey, then Portkey, velo, direct), each for its share of the time, and
  the samples of a target are pooled, so load that drifts during the run favours no target.
- Added latency is a difference of medians from runs taken one after another, not paired samples:
  on a shared or busy machine (the load at start is in the machine table), repeat the run and look
  at the spread.
`

const PROFILES = `## Profiling velo's hot path

\`npm run perf -- --cpu-prof [--cpu-prof-dir DIR] [--only 1]\` starts the velo that serves sections 1-3
as \`node --cpu-prof --cpu-prof-dir DIR bin/run.js serve ...\`. Node writes \`DIR/velo.cpuprofile\` when
velo exits (the harness stops it with SIGTERM, which velo handles by draining and exiting), and the
harness prints (and writes below) three tables: the functions with the most self time; the same time
charged to the nearest function of velo or an npm package on the stack, so that a \`writev\` or
\`writeString\` in native code shows up against the code that wrote (pino's logger, the response
path); and the time summed by origin (velo's own code, \`node\` internals, each npm package).
The profile covers velo's whole life, start-up included: \`compileSourceTextModule\` and
\`wrapSafe\` are module loading, not request handling; a longer run (\`--only 1 --duration 20\`)
makes them small.

To look further:
- Chrome or Edge: open \`chrome://inspect\`, "Open dedicated DevTools for Node", Performance tab,
  "Load profile", pick the \`.cpuprofile\`. The bottom-up view sorts by self time (what to cut); the
  flame chart shows one request's path through the server.
- speedscope (\`npx speedscope DIR/velo.cpuprofile\`, or drop the file on speedscope.app): "Left Heavy"
  merges identical stacks into one flame graph, "Sandwich" lists functions by self time with their
  callers and callees.
- What to look for on the request path: JSON parse or stringify more than once per request, closures
  or objects created per streamed chunk, \`Buffer.concat\` and string building per chunk, logging
  (pino serialisation) and metrics per request, and new upstream connections instead of the pooled
  ones. \`(garbage collector)\` above a few percent means per-request allocations.
`

export function renderDoc(input: DocInput): string {
  const m = input.machine
  const out: string[] = []
  out.push('# Performance', '')
  out.push(
    `Generated by \`npm run perf\` on ${input.date.toISOString().slice(0, 16).replace('T', ' ')} UTC; run it again to update this page (edits are overwritten).`,
    '',
  )
  out.push(`Command: \`${input.command}\``, '')
  out.push('## Targets', '', `Result: ${tally(input.verdicts) || 'nothing measured'}.`, '')
  out.push(verdictMarkdown(input.verdicts), '')
  out.push('## Machine', '')
  out.push(
    markdownTable(
      ['CPU', 'cores', 'RAM', 'OS', 'Node', 'llama.cpp', 'Portkey', 'velo', 'load at start'],
      [
        [
          m.cpu,
          String(m.cores),
          `${m.ramGiB} GiB`,
          m.os,
          m.node,
          m.llamaCpp,
          m.portkey,
          m.velo,
          m.loadAtStart.toFixed(2),
        ],
      ],
    ),
    '',
  )
  for (const section of input.sections) {
    out.push(`## ${section.number}. ${section.title}`, '')
    if (section.rows.length > 0) out.push(markdownTable(section.headers, section.rows), '')
    for (const note of section.notes) out.push(`- ${note}`)
    if (section.notes.length > 0) out.push('')
  }
  if (input.notes.length > 0) {
    out.push('## Notes', '')
    for (const note of input.notes) out.push(`- ${note}`)
    out.push('')
  }
  if (input.profile) {
    const { top, owners, origins } = profileTables(input.profile.summary)
    const s = input.profile.summary
    out.push('## CPU profile of velo', '')
    out.push(
      `A second velo, started under \`node --cpu-prof\` after the measurements (the profiler's overhead stays out of the figures above), driven with section 1's non-streaming load at each concurrency and section 2's 200-chunk streams. \`${input.profile.file}\`: ${s.busyMs.toFixed(0)} ms busy of ${s.totalMs.toFixed(0)} ms profiled, garbage collection ${s.gcMs.toFixed(0)} ms.`,
      '',
    )
    out.push('Functions by self time:', '')
    out.push(markdownTable(['function', 'where', 'self ms', 'share of busy'], top), '')
    out.push(
      'The same time charged to the nearest function of velo or an npm package on the stack (so socket writes and stream plumbing count against the code that asked for them):',
      '',
    )
    out.push(markdownTable(['function', 'where', 'ms', 'share of busy'], owners), '')
    out.push('By origin:', '')
    out.push(markdownTable(['origin', 'self ms', 'share of busy'], origins), '')
  }
  out.push(METHOD)
  out.push('## Running it', '', '```', USAGE, '```', '')
  out.push(PROFILES)
  return `${out.join('\n').trimEnd()}\n`
}
