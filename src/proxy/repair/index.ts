/** The tool-call stage of velo serve: repair, recovery from text, validation, retries, enforcement, streams. */
export { type ParsedArguments, parseArguments } from './arguments.js'
export {
  type EnforcementTarget,
  type EnforceOptions,
  enforcementFields,
  parseEnforcedOutput,
  toolCallSchema,
} from './enforce.js'
export { callsFromJson, type Extraction, extractToolCalls, parsePythonCalls } from './extract.js'
export {
  type FormatRepairOptions,
  ollamaToolCalls,
  openAIToolCalls,
  repairOllamaChatResponse,
  repairOpenAIChatResponse,
} from './formats.js'
export {
  describeProblems,
  newCallId,
  type RepairInput,
  type RepairOptions,
  repairToolCalls,
  resolveToolName,
} from './repair.js'
export {
  correctiveMessage,
  planToolCallRetry,
  type RetryMessage,
  type RetryPlan,
  type RetryPolicy,
  toolCallError,
} from './retry.js'
export { OllamaToolCallStream, OpenAIToolCallStream, type StreamRepairOptions, TextGate } from './stream.js'
export {
  createToolCallRepairer,
  DEFAULT_TOOL_CALL_SETTINGS,
  type ToolCallCallbacks,
  type ToolCallEvent,
  ToolCallRepairer,
  type ToolCallSettings,
  type ToolCallStats,
} from './tool-call-repair.js'
export {
  type JsonSchema,
  type RawToolCall,
  type RepairCounts,
  type RepairedToolCall,
  type RepairResult,
  type ToolCallProblem,
  type ToolSpec,
  toolsFromRequest,
} from './types.js'
export { schemaCompiles, type Validation, validateArguments } from './validate.js'
