import { Flags } from '@oclif/core'
import { VeloCommand } from '../../base-command.js'
import { loadConfig } from '../../core/config/load.js'
import { listModels, type ModelsList } from '../../core/detect/models-list.js'
import { formatBytes, formatContext, formatCount, table } from '../../core/detect/render.js'
import { configFlag, modelsDirFlag } from '../../flags.js'

export default class ModelsListCommand extends VeloCommand {
  static override description =
    'List GGUF models on this machine and the models upstream servers (Ollama) offer'
  static override examples = [
    '<%= config.bin %> models list',
    '<%= config.bin %> models list --models-dir ~/models --json',
  ]
  static override enableJsonFlag = true
  static override flags = {
    'models-dir': modelsDirFlag,
    'ollama-url': Flags.string({
      description: 'the Ollama to ask (default: $OLLAMA_HOST or http://127.0.0.1:11434)',
    }),
    config: configFlag,
  }

  async run(): Promise<ModelsList> {
    const { flags } = await this.parse(ModelsListCommand)
    const { config } = await loadConfig(flags.config)
    const result = await listModels({
      modelsDirs: flags['models-dir'] ?? [],
      configuredModelsDirs: config.managed.modelsDirs,
      upstreams: config.upstreams,
      ollamaUrl: flags['ollama-url'],
    })
    if (this.jsonEnabled()) return result
    this.log(`GGUF files (${result.local.length})`)
    this.log(
      result.local.length === 0
        ? '  none found (pass --models-dir DIR to search a folder)'
        : table(
            ['id', 'source', 'arch', 'params', 'quant', 'ctx', 'size', 'path'],
            result.local.map((m) => [
              m.id,
              m.source,
              m.architecture ?? '?',
              formatCount(m.parameterCount),
              m.quantization ?? '?',
              m.contextLength ? formatContext(m.contextLength) : '?',
              formatBytes(m.fileBytes),
              m.path,
            ]),
          ),
    )
    for (const upstream of result.upstreams) {
      this.log('')
      this.log(`${upstream.kind === 'ollama' ? 'Ollama' : 'OpenAI-compatible'} at ${upstream.url}`)
      if (!upstream.reachable) {
        this.log(`  not reachable (${upstream.error ?? 'no answer'})`)
        continue
      }
      this.log(
        upstream.models.length === 0
          ? '  no models'
          : table(
              ['name', 'family', 'parameters', 'quant', 'size'],
              upstream.models.map((m) => [
                m.name,
                m.family ?? '-',
                m.parameterSize ?? '-',
                m.quantization ?? '-',
                m.sizeBytes === null ? '-' : formatBytes(m.sizeBytes),
              ]),
            ),
      )
    }
    for (const note of result.notes) this.logToStderr(`note: ${note}`)
    return result
  }
}
