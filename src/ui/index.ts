/** The live views: serve's dashboard, `velo top`, and the progress view bench and optimize share. */

export { BenchProgressView, reduceBenchProgress } from './BenchProgressView.js'
export { Dashboard, type DashboardProps, type Notice } from './Dashboard.js'
export { LiveDashboard, type LiveDashboardProps } from './LiveDashboard.js'
export {
  type BenchProgressDisplay,
  benchProgress,
  type OptimizeProgressDisplay,
  optimizeProgress,
} from './live-progress.js'
export { OptimizeProgressView, reduceOptimizeProgress } from './OptimizeProgressView.js'
export {
  type ProgressFact,
  type ProgressStage,
  ProgressView,
  type ProgressViewProps,
  type StageState,
} from './ProgressView.js'
export { type PlainStatusOptions, runPlainStatus, summaryLine } from './plain-status.js'
export { createRemote, type Remote, type RemoteOptions } from './remote.js'
export {
  type DashboardExit,
  type DashboardHandle,
  type RunDashboardOptions,
  runDashboard,
} from './run-dashboard.js'
export { colorEnabled } from './Styled.js'
export {
  type ConnectionInfo,
  createPollingSource,
  type DashboardAction,
  type DashboardActions,
  type StatusSource,
} from './source.js'
export { canDrawLive, inCi } from './terminal.js'
