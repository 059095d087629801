import { Box, Text } from 'ink'
import type { VeloStatus } from '../proxy/status-types.js'
import { formatBytes, formatPercent, formatRate, formatUptime, sparkline } from './format.js'
import { Styled } from './Styled.js'
import type { ConnectionInfo } from './source.js'

export interface HeaderProps {
  status: VeloStatus | undefined
  connection: ConnectionInfo | undefined
  width: number
}

/** Two lines: where velo listens and its rates, then the tokens/s sparkline (or why it is not live). */
export function Header({ status, connection, width }: HeaderProps) {
  const dot = connection ? <ConnectionDot connection={connection} /> : null
  if (!status) {
    return (
      <Box flexDirection="column">
        <Text wrap="truncate-end">
          {dot}
          <Styled bold>velo top</Styled> {connection?.target ?? ''}
        </Text>
        <ConnectionLine connection={connection} fallback="waiting for the first status…" />
      </Box>
    )
  }
  const hitRate = status.cache.hits + status.cache.semanticHits + status.cache.misses > 0
  const sparkWidth = Math.max(10, Math.min(60, width - 20))
  const history = status.tokensPerSecondHistory
  const peak = history.length > 0 ? Math.max(...history) : 0
  return (
    <Box flexDirection="column">
      <Text wrap="truncate-end">
        {dot}
        {width >= 100 ? <Styled bold>{`velo ${status.version}  `}</Styled> : null}
        <Styled bold>{status.listen}</Styled>
        {`  up ${formatUptime(status.uptimeSeconds)}  `}
        <Styled bold>{formatRate(status.requestsPerSecond)}</Styled>
        {' req/s  '}
        <Styled bold>{formatRate(status.tokensPerSecond)}</Styled>
        {' tok/s  cache '}
        {hitRate ? formatPercent(status.cache.hitRate) : '-'}
        {'  errors '}
        <Styled tone={status.totals.errors > 0 ? 'error' : undefined}>{String(status.totals.errors)}</Styled>
      </Text>
      {connection && connection.state !== 'connected' ? (
        <ConnectionLine connection={connection} fallback="" />
      ) : (
        <Text wrap="truncate-end">
          {'tok/s '}
          <Styled tone="info">{sparkline(history, sparkWidth)}</Styled>
          {` peak ${formatRate(peak)}`}
          {width >= 120
            ? `  requests ${status.totals.requests}  tokens ${formatRate(status.totals.promptTokens)} in / ` +
              `${formatRate(status.totals.completionTokens)} out  cache ${status.cache.entries} entries ` +
              `(${formatBytes(status.cache.bytes)})`
            : ''}
        </Text>
      )}
    </Box>
  )
}

function ConnectionDot({ connection }: { connection: ConnectionInfo }) {
  if (connection.state === 'connected') return <Styled tone="ok">● </Styled>
  if (connection.state === 'connecting') return <Styled tone="warn">○ </Styled>
  return <Styled tone="error">✖ </Styled>
}

function ConnectionLine({
  connection,
  fallback,
}: {
  connection: ConnectionInfo | undefined
  fallback: string
}) {
  if (!connection || connection.state === 'connected') return <Text wrap="truncate-end">{fallback}</Text>
  if (connection.state === 'connecting') {
    return <Text wrap="truncate-end">{`connecting to ${connection.target}…`}</Text>
  }
  const why = connection.error ? `: ${connection.error}` : ''
  return (
    <Text wrap="truncate-end">
      <Styled tone="error" bold>
        {`disconnected (retry ${connection.attempts})`}
      </Styled>
      {why}
    </Text>
  )
}
