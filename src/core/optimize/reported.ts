import { startLlamaServer } from '../engine/llama-server.js'
import { parseAllocations, type ReportedAllocations } from './memory.js'

export interface ReportOptions {
  serverPath: string
  model: string
  /** llama-server arguments of the configuration to load. */
  args: string[]
  startTimeoutMs?: number
}

/**
 * Load a model in llama-server with these arguments and read back the buffers it allocated.
 * `-lv 4` makes llama.cpp print its buffer sizes; `--no-warmup` skips the empty decode.
 */
export async function reportedAllocations(options: ReportOptions): Promise<ReportedAllocations> {
  const lines: string[] = []
  const server = await startLlamaServer({
    serverPath: options.serverPath,
    model: options.model,
    args: [...options.args, '-lv', '4', '--no-warmup'],
    startTimeoutMs: options.startTimeoutMs ?? 60_000,
    onLine: (line) => {
      if (line.includes('buffer size') || line.includes('KV self size')) lines.push(line)
    },
  })
  await server.stop()
  return parseAllocations(lines.join('\n'))
}
