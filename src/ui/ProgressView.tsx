import { Box, Text } from 'ink'
import { fitCell } from './format.js'
import { renderBar } from './progress.js'
import { ColorContext, colorEnabled, Styled, type Tone } from './Styled.js'

export type StageState = 'pending' | 'running' | 'done' | 'failed' | 'skipped'

export interface ProgressStage {
  label: string
  state: StageState
  /** 0..100 while running, when the work is countable. */
  percent?: number | undefined
  /** A short note: `3/6 requests`, `12.3s`, the reason it failed. */
  detail?: string | undefined
}

/** A figure under the stages: `best  45.2 tok/s (threads=4)`, `time left  8m12s`. */
export interface ProgressFact {
  label: string
  value: string
  tone?: Tone | undefined
}

export interface ProgressViewProps {
  stages: ProgressStage[]
  /** Figures of the work in progress, one per line, labels aligned. */
  facts?: ProgressFact[] | undefined
  title?: string | undefined
  /** Width to fit; defaults to 80. */
  width?: number | undefined
  color?: boolean | undefined
}

const GLYPHS: Record<StageState, [glyph: string, tone: Tone | undefined]> = {
  pending: ['·', 'muted'],
  running: ['›', 'info'],
  done: ['✔', 'ok'],
  failed: ['✖', 'error'],
  skipped: ['-', 'muted'],
}

/**
 * A compact multi-stage progress view (bench warmup/measure, optimize trials): one line per stage
 * with a glyph, the label, a bar while it runs, and a note, then the figures of the running work.
 * Static: the caller rerenders it (live-progress.tsx).
 */
export function ProgressView({ stages, facts = [], title, width = 80, color }: ProgressViewProps) {
  const labelWidth = Math.min(28, Math.max(8, ...stages.map((stage) => stage.label.length)))
  const factWidth = Math.min(12, Math.max(0, ...facts.map((fact) => fact.label.length)))
  const barWidth = width >= 100 ? 30 : 20
  return (
    <ColorContext.Provider value={color ?? colorEnabled()}>
      <Box flexDirection="column" width={width}>
        {title ? (
          <Text wrap="truncate-end">
            <Styled bold>{title}</Styled>
          </Text>
        ) : null}
        {stages.map((stage) => {
          const [glyph, tone] = GLYPHS[stage.state]
          const showBar = stage.state === 'running' && stage.percent !== undefined
          const percent = Math.round(Math.max(0, Math.min(100, stage.percent ?? 0)))
          return (
            <Text key={stage.label} wrap="truncate-end">
              <Styled tone={tone}>{glyph}</Styled> {fitCell(stage.label, labelWidth)}
              {showBar ? `  ${renderBar(percent, barWidth)} ${String(percent).padStart(3)}%` : ''}
              {stage.detail ? (
                <Styled tone={stage.state === 'failed' ? 'error' : 'muted'}>{`  ${stage.detail}`}</Styled>
              ) : null}
            </Text>
          )
        })}
        {facts.map((fact) => (
          <Text key={fact.label} wrap="truncate-end">
            {`  ${fitCell(fact.label, factWidth)}  `}
            <Styled tone={fact.tone}>{fact.value}</Styled>
          </Text>
        ))}
      </Box>
    </ColorContext.Provider>
  )
}
