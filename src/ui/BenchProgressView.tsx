import type { BenchPhase, BenchProgress } from '../core/bench/types.js'
import { formatMs, formatRate } from './format.js'
import { type ProgressFact, type ProgressStage, ProgressView } from './ProgressView.js'

/** The stages of a bench run in the order they happen, as the view names them. */
const STAGES: [phase: Exclude<BenchPhase, 'done'>, label: string][] = [
  ['server', 'start server'],
  ['connect', 'connect'],
  ['calibrate', 'calibrate'],
  ['warmup', 'warm up'],
  ['level', 'measure'],
  ['micro', 'microbench'],
]

export interface BenchProgressState {
  /** The newest event of each stage reached so far. */
  latest: Partial<Record<BenchPhase, BenchProgress>>
  /** The stage running now; undefined before the first event and after `done`. */
  current: Exclude<BenchPhase, 'done'> | undefined
  /** Why the run stopped early (the `done` event's `stopped: ...`). */
  stopped: string | undefined
}

export const initialBenchProgress: BenchProgressState = {
  latest: {},
  current: undefined,
  stopped: undefined,
}

/** The state after one of `runBench`'s progress events. */
export function reduceBenchProgress(state: BenchProgressState, event: BenchProgress): BenchProgressState {
  const latest = { ...state.latest, [event.phase]: event }
  if (event.phase === 'done') {
    const stopped = event.message.startsWith('stopped') ? event.message : undefined
    return { latest, current: stopped ? state.current : undefined, stopped }
  }
  return { latest, current: event.phase, stopped: undefined }
}

export interface BenchProgressViewProps {
  state: BenchProgressState
  width?: number | undefined
  color?: boolean | undefined
}

/**
 * bench's live progress: the stages reached (a server per combination, warm-up, each level), the
 * bar of the whole run on the running one, and while a level runs what it has measured so far.
 */
export function BenchProgressView({ state, width, color }: BenchProgressViewProps) {
  const stages: ProgressStage[] = []
  for (const [phase, label] of STAGES) {
    const event = state.latest[phase]
    if (!event) continue
    const running = phase === state.current
    stages.push({
      label,
      state: running ? (state.stopped ? 'failed' : 'running') : 'done',
      percent: running ? event.percent : undefined,
      detail: running && state.stopped ? state.stopped : event.message,
    })
  }
  const level = state.latest.level?.running
  const facts: ProgressFact[] =
    state.current === 'level' && level
      ? [
          {
            label: 'requests',
            value: `${level.completed} done, ${level.failed} failed`,
            tone: level.failed > 0 ? 'error' : undefined,
          },
          {
            label: 'rate',
            value: `${formatRate(level.requestsPerSec)} req/s  ${formatRate(level.outputTokensPerSec)} tok/s`,
          },
          { label: 'TTFT p50', value: formatMs(level.ttftMedianMs) },
        ]
      : []
  return <ProgressView title="velo bench" stages={stages} facts={facts} width={width} color={color} />
}
