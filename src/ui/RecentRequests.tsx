import { Box, Text } from 'ink'
import type { RecentRequest } from '../proxy/status-types.js'
import { fitCell, formatClock, formatMs } from './format.js'
import { recentColumns } from './layout.js'
import { Styled, type Tone } from './Styled.js'

export interface RecentRequestsProps {
  recent: RecentRequest[]
  visible: number
  width: number
}

const CACHE_LABELS: Record<RecentRequest['cache'], string> = {
  hit: 'hit',
  'semantic-hit': 'sem',
  miss: 'miss',
  bypass: '-',
}

/** The newest requests first: model, client, status, TTFT, tokens, duration, cache. */
export function RecentRequests({ recent, visible, width }: RecentRequestsProps) {
  const columns = recentColumns(width)
  const title = columns.map((column) => fitCell(column.title, column.width, column.align)).join(' ')
  const newest = [...recent].sort((a, b) => b.at.localeCompare(a.at)).slice(0, visible)
  return (
    <Box flexDirection="column">
      <Text wrap="truncate-end">
        <Styled bold>{title}</Styled>
      </Text>
      {newest.length === 0 ? <Text wrap="truncate-end">no requests yet</Text> : null}
      {newest.map((request) => (
        <Text key={request.id} wrap="truncate-end">
          {columns.flatMap((column, index) => {
            const text = fitCell(cellText(request, column.key), column.width, column.align)
            const cell =
              column.key === 'status' ? (
                <Styled key={column.key} tone={statusTone(request.status)}>
                  {text}
                </Styled>
              ) : (
                text
              )
            return index === 0 ? [cell] : [' ', cell]
          })}
        </Text>
      ))}
    </Box>
  )
}

function cellText(request: RecentRequest, key: string): string {
  switch (key) {
    case 'time':
      return formatClock(request.at)
    case 'model':
      return request.model
    case 'client':
      return request.client
    case 'route':
      return request.route
    case 'status':
      return String(request.status)
    case 'ttft':
      return formatMs(request.ttftMs)
    case 'tokens':
      return `${request.promptTokens ?? '-'}/${request.completionTokens ?? '-'}`
    case 'duration':
      return formatMs(request.durationMs)
    case 'cache':
      return CACHE_LABELS[request.cache]
    default:
      return ''
  }
}

function statusTone(status: number): Tone {
  if (status >= 500) return 'error'
  if (status >= 400) return 'warn'
  return 'ok'
}
