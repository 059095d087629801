/**
 * How the dashboard spends the terminal: column widths per table and rows per section. The frame is
 * at most `rows - 1` lines tall, because Ink clears the whole screen for every frame that fills the
 * terminal, and that is the flicker a live view must avoid.
 */

export interface Column {
  key: string
  title: string
  width: number
  align: 'left' | 'right'
}

/** At this width and over, recent requests and health sit side by side. */
export const SIDE_BY_SIDE_MIN_COLUMNS = 140

export function modelColumns(width: number): Column[] {
  const columns: Column[] = [
    { key: 'state', title: 'STATE', width: 9, align: 'left' },
    { key: 'slots', title: 'SLOTS', width: 5, align: 'right' },
    { key: 'queue', title: 'QUEUE', width: 5, align: 'right' },
    { key: 'rps', title: 'REQ/S', width: 5, align: 'right' },
    { key: 'tps', title: 'TOK/S', width: 5, align: 'right' },
    { key: 'ttft', title: 'TTFT p50/95', width: 11, align: 'right' },
  ]
  if (width >= 100) columns.splice(0, 0, { key: 'kind', title: 'KIND', width: 7, align: 'left' })
  // Two characters of selection marker in front of the row, one space between cells.
  const fixed = 2 + columns.reduce((sum, column) => sum + column.width + 1, 0)
  const free = Math.max(20, width - fixed - 2)
  const upstream = width >= 160 ? Math.min(32, Math.floor(free * 0.35)) : 0
  const model = Math.max(10, Math.min(40, Math.floor((free - upstream) * 0.58)))
  const profile = Math.max(7, free - upstream - model - (upstream > 0 ? 1 : 0))
  columns.splice(0, 0, { key: 'model', title: 'MODEL', width: model, align: 'left' })
  if (upstream > 0) columns.push({ key: 'upstream', title: 'UPSTREAM', width: upstream, align: 'left' })
  columns.push({ key: 'profile', title: 'PROFILE', width: profile, align: 'left' })
  return columns
}

export function recentColumns(width: number): Column[] {
  const columns: Column[] = [
    { key: 'time', title: 'TIME', width: 8, align: 'left' },
    { key: 'status', title: 'ST', width: 3, align: 'right' },
    { key: 'ttft', title: 'TTFT', width: 6, align: 'right' },
    { key: 'tokens', title: 'TOKENS', width: 9, align: 'right' },
    { key: 'duration', title: 'TOOK', width: 6, align: 'right' },
    { key: 'cache', title: 'CACHE', width: 5, align: 'left' },
  ]
  const fixed = columns.reduce((sum, column) => sum + column.width + 1, 0)
  const free = Math.max(16, width - fixed - 1)
  const route = width >= 110 ? Math.min(22, Math.floor(free * 0.3)) : 0
  const model = Math.max(8, Math.min(32, Math.floor((free - route) * 0.55)))
  const client = Math.max(6, free - route - model - (route > 0 ? 2 : 1))
  columns.splice(1, 0, { key: 'model', title: 'MODEL', width: model, align: 'left' })
  columns.splice(2, 0, { key: 'client', title: 'CLIENT', width: client, align: 'left' })
  if (route > 0) columns.splice(3, 0, { key: 'route', title: 'ROUTE', width: route, align: 'left' })
  return columns
}

export interface SectionRows {
  /** Model rows shown (the table scrolls to keep the selection visible). */
  models: number
  recent: number
  /** Upstream lines plus error lines. */
  health: number
  sideBySide: boolean
}

/**
 * Rows per section for a frame `height` lines tall. Fixed lines: header (2), a blank, the models
 * title and detail lines, a blank, the recent title, the footer; stacked, also a blank and the
 * health title (side by side the health title shares the recent title's line).
 */
export function sectionRows(
  height: number,
  width: number,
  counts: { models: number; recent: number; upstreams: number; errors: number },
): SectionRows {
  const sideBySide = width >= SIDE_BY_SIDE_MIN_COLUMNS
  const fixed = sideBySide ? 8 : 10
  const free = Math.max(3, height - fixed)
  const models = Math.max(1, Math.min(counts.models, Math.max(3, Math.floor(free * 0.4))))
  const healthWanted = Math.max(1, counts.upstreams + counts.errors)
  if (sideBySide) {
    const rest = Math.max(1, free - models)
    return { models, recent: rest, health: Math.min(healthWanted, rest), sideBySide }
  }
  const health = Math.min(healthWanted, Math.max(1, Math.min(4, free - models - 2)))
  const recent = Math.max(1, free - models - health)
  return { models, recent, health, sideBySide }
}

/** The first row to show so that `selected` stays inside a window of `visible` rows. */
export function scrollOffset(selected: number, total: number, visible: number): number {
  if (total <= visible) return 0
  const half = Math.floor(visible / 2)
  return Math.max(0, Math.min(total - visible, selected - half))
}
