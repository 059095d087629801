/** velo bench's programmatic API: `velo optimize` and scripts measure through these. */
export { aggregateRow } from './aggregate.js'
export { type BenchCliInput, type BenchCliResult, benchFromCli } from './cli.js'
export { compareReports, describeRegressions, loadBaseline, rowKey } from './compare.js'
export { type LevelPlan, type LevelRun, type RequestRecord, runLevel, timeRequest } from './load.js'
export {
  type LlamaBenchOptions,
  parseLlamaBenchJson,
  runLlamaBench,
  runMicroBench,
  type ServerMicroOptions,
} from './micro.js'
export { parseBandwidth, parseConcurrency, parseSlo, parseSweep } from './parse.js'
export { renderCsv, renderHtml, renderMarkdown, renderTable } from './report/index.js'
export { runBench, validateBenchOptions } from './run.js'
export { percentile, summarize } from './stats.js'
export * from './types.js'
export { buildSyntheticWorkload, loadDataset, type PlannedRequest, type Workload } from './workload.js'
