import type { OptimizeEvent } from '../core/optimize/optimize.js'
import { bestLabel } from '../core/optimize/render.js'
import type { Phase } from '../core/optimize/trial-log.js'
import { formatMs } from './format.js'
import { type ProgressFact, type ProgressStage, ProgressView } from './ProgressView.js'

const PHASES: [phase: Phase, label: string][] = [
  ['baseline', 'baseline'],
  ['search', 'search'],
  ['confirm', 'confirm'],
]

export interface OptimizeProgressState {
  /** From the `start` event: what is tuned, where, and how big the search is. */
  model: string | undefined
  backend: string | undefined
  gridSize: number | undefined
  maxTrials: number | undefined
  /** The trial last started (or read back from the log). */
  trial: { seq: number; phase: Phase; label: string } | undefined
  /** Whether that trial is being measured now. */
  measuring: boolean
  finished: number
  failed: number
  skipped: number
  /** `45.2 tok/s (threads=4)`: the best feasible trial so far. */
  best: string | undefined
  /** When the time budget runs out (epoch ms), from the last event's time left. */
  deadline: number | undefined
  /** The search is over (the command closed the view): no stage runs any more. */
  ended: boolean
}

export const initialOptimizeProgress: OptimizeProgressState = {
  model: undefined,
  backend: undefined,
  gridSize: undefined,
  maxTrials: undefined,
  trial: undefined,
  measuring: false,
  finished: 0,
  failed: 0,
  skipped: 0,
  best: undefined,
  deadline: undefined,
  ended: false,
}

/** The state after one of optimize's events, `now` being when it arrived. */
export function reduceOptimizeProgress(
  state: OptimizeProgressState,
  event: OptimizeEvent,
  now: number,
): OptimizeProgressState {
  switch (event.type) {
    case 'start':
      return {
        ...state,
        model: event.model,
        backend: event.backend,
        gridSize: event.gridSize,
        maxTrials: event.maxTrials,
      }
    case 'pruned':
      return { ...state, skipped: state.skipped + 1 }
    case 'trial-start':
      return {
        ...state,
        maxTrials: event.maxTrials,
        trial: { seq: event.seq, phase: event.phase, label: event.label },
        measuring: true,
        deadline: event.timeLeftMs === undefined ? undefined : now + event.timeLeftMs,
      }
    case 'trial-end':
      return {
        ...state,
        maxTrials: event.maxTrials,
        trial: { seq: event.seq, phase: event.phase, label: event.label },
        measuring: false,
        finished: state.finished + 1,
        failed: state.failed + (event.measurement ? 0 : 1),
        best: bestLabel(event) ?? state.best,
        deadline: event.timeLeftMs === undefined ? undefined : now + event.timeLeftMs,
      }
  }
}

export interface OptimizeProgressViewProps {
  state: OptimizeProgressState
  /** The clock the time left counts down on (epoch ms). */
  now: number
  width?: number | undefined
  color?: boolean | undefined
}

/**
 * optimize's live progress: baseline, search and confirm as stages, the trial count as the bar of
 * the running one, then the parameters under test, the best so far and the time budget left.
 */
export function OptimizeProgressView({ state, now, width, color }: OptimizeProgressViewProps) {
  const { trial, maxTrials } = state
  const current = trial ? PHASES.findIndex(([phase]) => phase === trial.phase) : -1
  const stages: ProgressStage[] = PHASES.map(([, label], index) => {
    if (index < current) return { label, state: 'done' }
    if (index > current || !trial) return { label, state: state.ended ? 'skipped' : 'pending' }
    const count = maxTrials === undefined ? `trial ${trial.seq}` : `trial ${trial.seq}/${maxTrials}`
    if (state.ended) return { label, state: 'done', detail: count }
    return {
      label,
      state: 'running',
      // Trials finished of the most there can be: the search may stop sooner (converged, budget).
      percent: maxTrials ? ((trial.seq - (state.measuring ? 1 : 0)) / maxTrials) * 100 : undefined,
      detail: count,
    }
  })
  const facts: ProgressFact[] = []
  if (trial) facts.push({ label: state.measuring ? 'testing' : 'last tested', value: trial.label })
  facts.push({ label: 'best so far', value: state.best ?? '-', tone: state.best ? 'ok' : undefined })
  if (state.deadline !== undefined && !state.ended) {
    facts.push({ label: 'time left', value: formatMs(Math.max(0, state.deadline - now)) })
  }
  const counts = [`${state.finished} done`]
  if (state.failed > 0) counts.push(`${state.failed} failed`)
  if (state.skipped > 0) counts.push(`${state.skipped} skipped before starting`)
  facts.push({ label: 'trials', value: counts.join(', ') })
  const title = state.model
    ? `velo optimize ${state.model} on ${state.backend}${state.gridSize === undefined ? '' : ` · ${state.gridSize} configurations`}`
    : 'velo optimize'
  return <ProgressView title={title} stages={stages} facts={facts} width={width} color={color} />
}
