import { Box, Text } from 'ink'
import { Styled } from './Styled.js'

export const KEY_HELP: ReadonlyArray<readonly [string, string]> = [
  ['↑ ↓  k j', 'select a model'],
  ['u', 'unload the selected model (stops its llama-server)'],
  ['l', 'load the selected model'],
  ['p', 'pause admission to the selected model, or resume it'],
  ['c', 'clear the response cache'],
  ['?', 'show or hide this help (Esc hides it too)'],
  ['q  Ctrl-C', 'quit'],
]

/** The key list, drawn in place of the tables while `?` is on. */
export function HelpOverlay({ height }: { height: number }) {
  const lines = KEY_HELP.slice(0, Math.max(1, height - 4))
  return (
    <Box flexDirection="column" paddingLeft={2}>
      <Text wrap="truncate-end">
        <Styled bold>keys</Styled>
      </Text>
      {lines.map(([keys, what]) => (
        <Text key={keys} wrap="truncate-end">
          <Styled tone="info">{keys.padEnd(12)}</Styled>
          {what}
        </Text>
      ))}
      <Text> </Text>
      <Text wrap="truncate-end">
        states: unloaded · loading · ready · unloading · failed · paused (admission stopped)
      </Text>
    </Box>
  )
}
