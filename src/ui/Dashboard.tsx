import { Box, Text, useInput, useStdin, useStdout } from 'ink'
import { useEffect, useRef, useState } from 'react'
import type { VeloStatus } from '../proxy/status-types.js'
import { Header } from './Header.js'
import { HealthPanel } from './HealthPanel.js'
import { HelpOverlay } from './HelpOverlay.js'
import { sectionRows } from './layout.js'
import { ModelsTable } from './ModelsTable.js'
import { RecentRequests } from './RecentRequests.js'
import { ColorContext, colorEnabled, Styled, type Tone } from './Styled.js'
import type { ConnectionInfo, DashboardAction } from './source.js'

export interface Notice {
  text: string
  tone: Tone
}

export interface DashboardProps {
  /** The snapshot to show; undefined until the first one arrives. */
  status: VeloStatus | undefined
  /** Called for every key that asks velo to do something, and for quit. */
  onAction: (action: DashboardAction) => void
  /** Remote sources only: the state of the stream, shown in the header. */
  connection?: ConnectionInfo | undefined
  /** The outcome of the last action, shown in the footer. */
  notice?: Notice | undefined
  /** Terminal size; defaults to the output stream's, then 80x24. */
  columns?: number | undefined
  rows?: number | undefined
  /** Style the text; defaults to off under NO_COLOR or TERM=dumb. */
  color?: boolean | undefined
}

const HINTS = '↑↓ select  u unload  l load  p pause/resume  c clear cache  ? help  q quit'
const NO_KEYS_HINT = 'keys off: stdin is not a terminal  Ctrl-C quits'

/** serve's live view and `velo top`: header, models, recent requests, health, and the keys. */
export function Dashboard({ status, onAction, connection, notice, columns, rows, color }: DashboardProps) {
  const size = useTerminalSize()
  const width = Math.max(20, columns ?? size.columns)
  // Tables are laid out for at least 80 columns; on a narrower terminal rows are cut, not wrapped.
  const layoutWidth = Math.max(80, width)
  // One line short of the terminal: a frame that fills it makes Ink clear the screen each time.
  const height = Math.max(12, (rows ?? size.rows) - 1)
  const [selectedId, setSelectedId] = useState<string | undefined>(undefined)
  // Several keys can arrive in one read (`↓p`, key repeat) and are handled before the next render,
  // so the keys read and move the selection through a ref, and the state only redraws it.
  const selection = useRef<string | undefined>(undefined)
  const [help, setHelp] = useState(false)
  const models = status?.models ?? []
  const selected = Math.max(
    models.findIndex((model) => model.id === selectedId),
    0,
  )
  const select = (id: string | undefined) => {
    selection.current = id
    setSelectedId(id)
  }

  // Without a terminal on stdin (`velo serve < /dev/null`) the view still draws; the keys are off.
  // Ink reports that as `isTTY`, undefined for a pipe or file, and useInput stays off only for false.
  const { isRawModeSupported } = useStdin()
  useInput(
    (input, key) => {
      if ((key.ctrl && input === 'c') || input === 'q') {
        onAction({ type: 'quit' })
        return
      }
      if (input === '?' || (help && key.escape)) {
        setHelp((shown) => !shown)
        return
      }
      if (key.upArrow || input === 'k') {
        select(step(models, selection.current, -1))
        return
      }
      if (key.downArrow || input === 'j') {
        select(step(models, selection.current, 1))
        return
      }
      if (input === 'c') {
        onAction({ type: 'clear-cache' })
        return
      }
      const current = models.find((model) => model.id === selection.current) ?? models[0]
      if (!current) return
      if (input === 'u') onAction({ type: 'unload', model: current.id })
      if (input === 'l') onAction({ type: 'load', model: current.id })
      if (input === 'p') onAction({ type: current.paused ? 'resume' : 'pause', model: current.id })
    },
    { isActive: isRawModeSupported === true },
  )

  const counts = {
    models: models.length,
    recent: status?.recent.length ?? 0,
    upstreams: status?.upstreams.length ?? 0,
    errors: status?.errors.length ?? 0,
  }
  const budget = sectionRows(height, layoutWidth, counts)
  const leftWidth = budget.sideBySide ? Math.floor(width * 0.6) : width
  return (
    <ColorContext.Provider value={color ?? colorEnabled()}>
      <Box flexDirection="column" width={width} height={height}>
        <Box flexDirection="column" flexShrink={0}>
          <Header status={status} connection={connection} width={layoutWidth} />
          <Text> </Text>
        </Box>
        <Box flexDirection="column" flexGrow={1} overflow="hidden">
          {help ? (
            <HelpOverlay height={height - 4} />
          ) : status ? (
            <>
              <Box flexDirection="column" flexShrink={0}>
                <ModelsTable
                  models={models}
                  selected={selected}
                  visible={budget.models}
                  width={layoutWidth}
                />
                <Text> </Text>
              </Box>
              <Box flexDirection={budget.sideBySide ? 'row' : 'column'} flexShrink={0}>
                <Box width={leftWidth} flexShrink={0} flexDirection="column">
                  <RecentRequests
                    recent={status.recent}
                    visible={budget.recent}
                    width={budget.sideBySide ? leftWidth - 1 : layoutWidth}
                  />
                </Box>
                {budget.sideBySide ? null : <Text> </Text>}
                <Box
                  flexDirection="column"
                  width={budget.sideBySide ? width - leftWidth : width}
                  flexShrink={0}
                >
                  <HealthPanel upstreams={status.upstreams} errors={status.errors} visible={budget.health} />
                </Box>
              </Box>
            </>
          ) : null}
        </Box>
        <Text wrap="truncate-end">
          {notice ? (
            <Styled tone={notice.tone}>{notice.text}</Styled>
          ) : (
            <Styled tone="muted">{isRawModeSupported === true ? HINTS : NO_KEYS_HINT}</Styled>
          )}
        </Text>
      </Box>
    </ColorContext.Provider>
  )
}

/** The id `delta` rows away from `current` (the first model when none is selected), clamped. */
function step(models: VeloStatus['models'], current: string | undefined, delta: number): string | undefined {
  const index = Math.max(
    0,
    models.findIndex((model) => model.id === current),
  )
  return models[Math.max(0, Math.min(models.length - 1, index + delta))]?.id
}

/** The output stream's size, updated on resize. */
function useTerminalSize(): { columns: number; rows: number } {
  const { stdout } = useStdout()
  const read = () => ({ columns: stdout.columns || 80, rows: stdout.rows || 24 })
  const [size, setSize] = useState(read)
  useEffect(() => {
    const onResize = () => setSize({ columns: stdout.columns || 80, rows: stdout.rows || 24 })
    stdout.on('resize', onResize)
    return () => {
      stdout.off('resize', onResize)
    }
  }, [stdout])
  return size
}
