import type { OptimizeEvent, OptimizeResult } from './optimize.js'

function formatValue(value: number, unit: string): string {
  if (!Number.isFinite(value)) return '-'
  return unit === 'ms' ? `${value.toFixed(0)} ms` : `${value.toFixed(1)} ${unit}`
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`
}

function formatDuration(ms: number): string {
  const seconds = Math.round(ms / 1000)
  return seconds >= 60
    ? `${Math.floor(seconds / 60)}m${String(seconds % 60).padStart(2, '0')}s`
    : `${seconds}s`
}

/** The live line while a trial runs, or undefined for events that print nothing live. */
export function liveLine(event: OptimizeEvent, best: string | undefined): string | undefined {
  if (event.type !== 'trial-start') return undefined
  const left = event.timeLeftMs === undefined ? '' : ` · ${formatDuration(event.timeLeftMs)} left`
  return `trial ${event.seq}/${event.maxTrials} ${event.phase}: ${event.label}${best ? ` · best ${best}` : ''}${left}`
}

/** A permanent line for a finished trial, a pruned candidate, or the start. */
export function eventLine(event: OptimizeEvent): string | undefined {
  switch (event.type) {
    case 'start':
      return event.resumed > 0
        ? `resuming: ${event.resumed} finished trials in ${event.logFile}`
        : `optimizing ${event.model} on ${event.backend}: ${event.gridSize} configurations in the space, at most ${event.maxTrials} trials (log ${event.logFile})`
    case 'pruned':
      return `  skipped ${event.label}: ${event.reason}`
    case 'trial-end': {
      const m = event.measurement
      const result = m
        ? `${formatValue(m.value, event.unit)}${m.p99TtftMs === undefined ? '' : ` (p99 TTFT ${m.p99TtftMs.toFixed(0)} ms${m.feasible ? '' : ', over the bound'})`}`
        : `failed: ${event.error ?? 'no result'}`
      return `  #${event.seq} ${event.phase} ${event.label}: ${result}${event.fromLog ? ' (from the log)' : ''}`
    }
    case 'trial-start':
      return undefined
  }
}

export function bestLabel(event: OptimizeEvent): string | undefined {
  if (event.type !== 'trial-end' || !event.best) return undefined
  return `${formatValue(event.best.value, event.unit)} (${event.best.label})`
}

export function renderOptimizeResult(result: OptimizeResult): string {
  const { profile } = result
  const unit = profile.objective.unit
  const m = profile.measurements
  const lines = [
    `goal ${profile.objective.goal}: ${profile.objective.metric}`,
    `  baseline (defaults)  ${formatValue(m.baseline.median, unit)}  [${formatValue(m.baseline.min, unit)} .. ${formatValue(m.baseline.max, unit)}], ${m.baseline.samples.length} samples`,
    `  tuned (${result.tuned.label})  ${formatValue(m.tuned.median, unit)}  [${formatValue(m.tuned.min, unit)} .. ${formatValue(m.tuned.max, unit)}], ${m.tuned.samples.length} samples`,
    `  speedup x${m.speedup.median.toFixed(2)} (spread x${m.speedup.low.toFixed(2)} .. x${m.speedup.high.toFixed(2)})`,
    `${plural(result.measured, 'trial')} measured, ${result.resumed} from the log, ${plural(result.pruned.length, 'candidate')} skipped before starting; stopped: ${result.stoppedBecause}`,
    `profile ${profile.id} written to ${result.profileFile}`,
  ]
  if (result.applied) lines.push(`created Ollama model ${result.applied} with these parameters`)
  lines.push(
    `export it: velo profiles export ${profile.id} --format ${profile.backend === 'ollama' ? 'modelfile' : 'llama-server'}`,
  )
  return lines.join('\n')
}
