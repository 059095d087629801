import { useCallback, useEffect, useRef, useState } from 'react'
import { errorMessage } from '../core/errors.js'
import type { VeloStatus } from '../proxy/status-types.js'
import { Dashboard, type Notice } from './Dashboard.js'
import type { ConnectionInfo, DashboardAction, DashboardActions, StatusSource } from './source.js'

export interface LiveDashboardProps {
  source: StatusSource
  actions: DashboardActions
  onQuit: () => void
  color?: boolean | undefined
  /** The least time between two redraws for new figures: 250 ms keeps it at 4 a second. */
  refreshMs?: number
  columns?: number | undefined
  rows?: number | undefined
}

const NOTICE_MS = 5000

/** The dashboard bound to a source and to actions: redraws as figures arrive and runs the keys. */
export function LiveDashboard({
  source,
  actions,
  onQuit,
  color,
  refreshMs = 250,
  columns,
  rows,
}: LiveDashboardProps) {
  const view = useThrottledSource(source, refreshMs)
  const [notice, setNotice] = useState<Notice | undefined>(undefined)

  useEffect(() => {
    if (!notice || notice.tone === 'info') return
    const timer = setTimeout(() => setNotice(undefined), NOTICE_MS)
    return () => clearTimeout(timer)
  }, [notice])

  const onAction = useCallback(
    (action: DashboardAction) => {
      if (action.type === 'quit') {
        onQuit()
        return
      }
      const [doing, done, run] = describe(action, actions)
      setNotice({ text: `${doing}…`, tone: 'info' })
      run().then(
        () => setNotice({ text: done, tone: 'ok' }),
        (error: unknown) => setNotice({ text: `${doing} failed: ${errorMessage(error)}`, tone: 'error' }),
      )
    },
    [actions, onQuit],
  )

  return (
    <Dashboard
      status={view.status}
      connection={view.connection}
      notice={notice}
      onAction={onAction}
      color={color}
      columns={columns}
      rows={rows}
    />
  )
}

function describe(
  action: Exclude<DashboardAction, { type: 'quit' }>,
  actions: DashboardActions,
): [doing: string, done: string, run: () => Promise<void>] {
  switch (action.type) {
    case 'unload':
      return [`unloading ${action.model}`, `unloaded ${action.model}`, () => actions.unload(action.model)]
    case 'load':
      return [`loading ${action.model}`, `loaded ${action.model}`, () => actions.load(action.model)]
    case 'pause':
      return [
        `pausing ${action.model}`,
        `paused admission to ${action.model}`,
        () => actions.pause(action.model),
      ]
    case 'resume':
      return [`resuming ${action.model}`, `resumed ${action.model}`, () => actions.resume(action.model)]
    case 'clear-cache':
      return ['clearing the cache', 'cleared the cache', () => actions.clearCache()]
  }
}

interface SourceView {
  status: VeloStatus | undefined
  connection: ConnectionInfo | undefined
}

/** The source's latest state, redrawn at most once per `intervalMs`; a late change is not lost. */
function useThrottledSource(source: StatusSource, intervalMs: number): SourceView {
  const read = useCallback(
    (): SourceView => ({ status: source.snapshot(), connection: source.connection?.() }),
    [source],
  )
  const [view, setView] = useState<SourceView>(read)
  const lastDraw = useRef(0)
  useEffect(() => {
    let timer: NodeJS.Timeout | undefined
    const draw = () => {
      timer = undefined
      lastDraw.current = Date.now()
      setView(read())
    }
    const unsubscribe = source.subscribe(() => {
      if (timer) return
      const wait = lastDraw.current + intervalMs - Date.now()
      if (wait <= 0) draw()
      else timer = setTimeout(draw, wait)
    })
    draw()
    return () => {
      unsubscribe()
      if (timer) clearTimeout(timer)
    }
  }, [source, intervalMs, read])
  return view
}
