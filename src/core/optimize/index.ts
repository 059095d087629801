/** velo optimize: the memory estimator, the search space and strategy, measured trials, the run. */
export {
  type DeviceBytes,
  estimateMemory,
  type KvType,
  kvBytesPerToken,
  type MemoryEstimate,
  type MemoryParams,
  type ModelShape,
  modelShape,
  parseAllocations,
  type ReportedAllocations,
} from './memory.js'
export { type OptimizeEvent, type OptimizeOptions, type OptimizeResult, optimize } from './optimize.js'
export { reportedAllocations } from './reported.js'
export { buildSpace, candidateKey, complete, enumerateGrid, type SearchSpace } from './space.js'
