/** The live views: serve's dashboard, `velo top`, and the progress view bench and optimize share. */
export { Dashboard, type DashboardProps, type Notice } from './Dashboard.js'
export { LiveDashboard, type LiveDashboardProps } from './LiveDashboard.js'
export { type ProgressStage, ProgressView, type ProgressViewProps, type StageState } from './ProgressView.js'
export { type PlainStatusOptions, runPlainStatus, summaryLine } from './plain-status.js'
export { createRemote, type Remote, type RemoteOptions } from './remote.js'
export {
  canDrawLive,
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
