import { EventEmitter } from 'node:events'
import { render } from 'ink'
import type { ReactElement } from 'react'

/**
 * ink-testing-library's render, with a terminal of any size (its stdout is fixed at 100 columns)
 * that can be resized. Frames are whole screens (Ink's debug mode), so `lastFrame()` is what shows.
 */
export class FakeTerminal extends EventEmitter {
  isTTY = true
  frames: string[] = []
  constructor(
    public columns: number,
    public rows: number,
  ) {
    super()
  }
  write = (frame: string): boolean => {
    this.frames.push(frame)
    return true
  }
  lastFrame = (): string => this.frames.at(-1) ?? ''
  resize(columns: number, rows: number): void {
    this.columns = columns
    this.rows = rows
    this.emit('resize')
  }
}

export class FakeKeyboard extends EventEmitter {
  isTTY = true
  rawMode: boolean[] = []
  private data: string | null = null
  write = (data: string): void => {
    this.data = data
    this.emit('readable')
    this.emit('data', data)
  }
  read = (): string | null => {
    const { data } = this
    this.data = null
    return data
  }
  setEncoding(): void {}
  setRawMode(mode: boolean): void {
    this.rawMode.push(mode)
  }
  resume(): void {}
  pause(): void {}
  ref(): void {}
  unref(): void {}
}

export function renderAt(tree: ReactElement, size: { columns: number; rows: number }) {
  const stdout = new FakeTerminal(size.columns, size.rows)
  const stdin = new FakeKeyboard()
  const instance = render(tree, {
    stdout: stdout as unknown as NodeJS.WriteStream,
    stdin: stdin as unknown as NodeJS.ReadStream,
    debug: true,
    exitOnCtrlC: false,
    patchConsole: false,
  })
  return {
    stdout,
    stdin,
    lastFrame: stdout.lastFrame,
    unmount: () => instance.unmount(),
    rerender: instance.rerender,
  }
}
