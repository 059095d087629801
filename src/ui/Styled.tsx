import { Text } from 'ink'
import { createContext, type ReactNode, useContext } from 'react'

/**
 * Whether the views may style text. Off under `NO_COLOR` (https://no-color.org) and `TERM=dumb`;
 * then every view renders plain characters and marks selection with a glyph instead of inverse.
 */
export function colorEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  const noColor = env['NO_COLOR']
  if (noColor !== undefined && noColor !== '') return false
  return env['TERM'] !== 'dumb'
}

export const ColorContext = createContext<boolean>(true)

export type Tone = 'ok' | 'warn' | 'error' | 'info' | 'muted'

const TONE_COLORS: Record<Tone, string> = {
  ok: 'green',
  warn: 'yellow',
  error: 'red',
  info: 'cyan',
  muted: 'gray',
}

export interface StyledProps {
  tone?: Tone | undefined
  bold?: boolean
  inverse?: boolean
  children?: ReactNode
}

/** Text whose styles drop away when color is off, so NO_COLOR output carries no escape codes. */
export function Styled({ tone, bold, inverse, children }: StyledProps) {
  const color = useContext(ColorContext)
  if (!color) return <Text>{children}</Text>
  return (
    <Text
      color={tone === undefined ? undefined : TONE_COLORS[tone]}
      bold={bold ?? false}
      inverse={inverse ?? false}
    >
      {children}
    </Text>
  )
}
