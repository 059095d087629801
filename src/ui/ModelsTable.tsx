import { Box, Text } from 'ink'
import type { ModelState, ModelStatus } from '../proxy/status-types.js'
import { fitCell, formatRate, formatTtft } from './format.js'
import { type Column, modelColumns, scrollOffset } from './layout.js'
import { Styled, type Tone } from './Styled.js'

export interface ModelsTableProps {
  models: ModelStatus[]
  selected: number
  /** Model rows to show; the table scrolls to keep the selection in view. */
  visible: number
  width: number
}

const STATE_TONES: Record<ModelState, Tone> = {
  ready: 'ok',
  loading: 'info',
  unloading: 'warn',
  unloaded: 'muted',
  failed: 'error',
}

/** The models/upstreams table: a title row, the visible rows, and a detail line for the selection. */
export function ModelsTable({ models, selected, visible, width }: ModelsTableProps) {
  const columns = modelColumns(width)
  const title = `  ${columns.map((column) => fitCell(column.title, column.width, column.align)).join(' ')}`
  if (models.length === 0) {
    return (
      <Box flexDirection="column">
        <Text wrap="truncate-end">
          <Styled bold>{title}</Styled>
        </Text>
        <Text wrap="truncate-end">
          {'  no models yet: start velo serve with --upstream URL or managed.modelsDirs in velo.yaml'}
        </Text>
        <Text> </Text>
      </Box>
    )
  }
  const offset = scrollOffset(selected, models.length, visible)
  const shown = models.slice(offset, offset + visible)
  const current = models[selected]
  return (
    <Box flexDirection="column">
      <Text wrap="truncate-end">
        <Styled bold>{title}</Styled>
      </Text>
      {shown.map((model, index) => (
        <ModelRow key={model.id} model={model} columns={columns} selected={offset + index === selected} />
      ))}
      <Text wrap="truncate-end">
        {current ? <ModelDetail model={current} /> : null}
        {models.length > visible ? `  (${offset + 1}-${offset + shown.length} of ${models.length})` : ''}
      </Text>
    </Box>
  )
}

function ModelRow({
  model,
  columns,
  selected,
}: {
  model: ModelStatus
  columns: Column[]
  selected: boolean
}) {
  const paused = model.paused && model.state === 'ready'
  const cells = columns.map((column) => {
    const text = fitCell(cellText(model, column.key, paused), column.width, column.align)
    if (column.key !== 'state') return text
    return (
      <Styled
        key={column.key}
        tone={paused ? 'warn' : STATE_TONES[model.state]}
        bold={model.state === 'failed'}
      >
        {text}
      </Styled>
    )
  })
  return (
    <Text wrap="truncate-end">
      <Styled inverse={selected}>
        {selected ? '› ' : '  '}
        {cells.flatMap((cell, index) => (index === 0 ? [cell] : [' ', cell]))}
      </Styled>
    </Text>
  )
}

function cellText(model: ModelStatus, key: string, paused: boolean): string {
  switch (key) {
    case 'model':
      return model.id
    case 'kind':
      return model.kind
    case 'state':
      return paused ? 'paused' : model.state
    case 'slots':
      return model.slotsTotal > 0 ? `${model.slotsBusy}/${model.slotsTotal}` : '-'
    case 'queue':
      return String(model.queueDepth)
    case 'rps':
      return formatRate(model.requestsPerSecond)
    case 'tps':
      return formatRate(model.generationTokensPerSecond)
    case 'ttft':
      return formatTtft(model.ttftP50Ms, model.ttftP95Ms)
    case 'upstream':
      return model.upstream ?? '-'
    case 'profile':
      return model.profile ?? '-'
    default:
      return ''
  }
}

/** What does not fit in the row: kind, upstream, aliases, pause, and why a model failed. */
function ModelDetail({ model }: { model: ModelStatus }) {
  const parts = [model.kind, model.upstream ?? 'not running']
  if (model.aliases.length > 0) parts.push(`aliases ${model.aliases.join(', ')}`)
  return (
    <>
      {`  ${model.id}: `}
      {model.state === 'failed' && model.error ? (
        <Styled tone="error">{`failed: ${model.error} · `}</Styled>
      ) : null}
      {model.paused ? <Styled tone="warn">{'admission paused · '}</Styled> : null}
      {parts.join(' · ')}
    </>
  )
}
