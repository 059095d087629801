/** The scheduler stage of velo serve: queues, fairness, model and prefix affinity, `auto` routing. */
export {
  type AutoRouteInput,
  type AutoRouter,
  type AutoRouterConfig,
  type AutoRule,
  createAutoRouter,
  describePrompt,
} from './auto-router.js'
export { FairQueue } from './fair-queue.js'
export {
  AffinityPolicy,
  type GroupView,
  type ModelDemand,
  type ModelSwitchPolicy,
  type SwitchDecision,
  type SwitchReason,
} from './model-switch.js'
export { pickByPrefix, prefixKeys, SlotPicker } from './prefix-affinity.js'
export {
  createScheduler,
  DEFAULT_SCHEDULER_SETTINGS,
  type GroupStatus,
  type ModelSnapshot,
  type ModelSwitchEvent,
  QueueRejection,
  resolvePriority,
  type SchedulerCallbacks,
  type SchedulerEvent,
  type SchedulerSettings,
  type SchedulerStats,
  VeloScheduler,
} from './scheduler.js'
