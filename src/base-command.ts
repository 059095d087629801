import { Command } from '@oclif/core'
import { VeloError } from './core/errors.js'

/** Every velo command: one-line cause and a suggestion on failure, never a stack trace. */
export abstract class VeloCommand extends Command {
  protected override async catch(error: Error & { exitCode?: number }): Promise<unknown> {
    if (error instanceof VeloError) {
      const suggestion = error.suggestion ? `\n  suggestion: ${error.suggestion}` : ''
      this.logToStderr(`velo: ${error.message}${suggestion}`)
      if (this.jsonEnabled()) {
        this.logJson({ error: { code: error.code, message: error.message, suggestion: error.suggestion } })
      }
      this.exit(error.exitCode)
    }
    return super.catch(error)
  }
}
