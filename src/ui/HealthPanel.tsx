import { Box, Text } from 'ink'
import type { UpstreamHealth, VeloStatus } from '../proxy/status-types.js'
import { formatClock } from './format.js'
import { Styled } from './Styled.js'

export interface HealthPanelProps {
  upstreams: UpstreamHealth[]
  errors: VeloStatus['errors']
  /** Lines below the title, shared by upstreams and errors. */
  visible: number
}

/** Upstream health (unhealthy ones first, so they stay in view) and the newest errors. */
export function HealthPanel({ upstreams, errors, visible }: HealthPanelProps) {
  const sorted = [...upstreams].sort((a, b) => Number(a.healthy) - Number(b.healthy))
  const newestErrors = [...errors].sort((a, b) => b.at.localeCompare(a.at))
  const errorLines = Math.min(
    newestErrors.length,
    Math.max(visible - sorted.length, Math.min(2, visible - 1)),
  )
  const upstreamLines = Math.max(0, Math.min(sorted.length, visible - errorLines))
  const down = upstreams.filter((upstream) => !upstream.healthy).length
  return (
    <Box flexDirection="column">
      <Text wrap="truncate-end">
        <Styled bold>UPSTREAMS</Styled>
        {` ${upstreams.length - down}/${upstreams.length} healthy`}
        {errors.length > 0 ? (
          <>
            {'  '}
            <Styled bold tone="error">{`ERRORS ${errors.length}`}</Styled>
          </>
        ) : null}
      </Text>
      {upstreams.length === 0 && visible > errorLines ? (
        <Text wrap="truncate-end">no upstreams configured</Text>
      ) : null}
      {sorted.slice(0, upstreamLines).map((upstream) => (
        <Text key={upstream.url} wrap="truncate-end">
          {upstream.healthy ? <Styled tone="ok">● </Styled> : <Styled tone="error">✖ </Styled>}
          {`${upstream.kind.padEnd(7)} ${upstream.url}`}
          {upstream.healthy ? null : (
            <Styled tone="error">
              {`  down${upstream.lastError ? `: ${upstream.lastError}` : ''}` +
                (upstream.lastErrorAt ? ` (${formatClock(upstream.lastErrorAt)})` : '')}
            </Styled>
          )}
        </Text>
      ))}
      {newestErrors.slice(0, errorLines).map((error) => (
        <Text key={`${error.at} ${error.message}`} wrap="truncate-end">
          <Styled tone="error">{`${formatClock(error.at)} ${error.message}`}</Styled>
        </Text>
      ))}
    </Box>
  )
}
