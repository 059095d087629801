/** The profiles store: what `velo optimize` writes and `velo serve` applies. */
export { ggufDigest } from './digest.js'
export {
  EXPORT_FORMATS,
  type ExportFormat,
  exportProfile,
  type OllamaOptions,
  parametersToLlamaServerArgs,
  parametersToOllamaOptions,
  profileToLlamaServerArgs,
  profileToOllamaOptions,
} from './export.js'
export { describeHardware, detectHardware, type Hardware } from './hardware.js'
export { type Goal, type Parameters, type Profile, profileSchema } from './schema.js'
export {
  type FindOptions,
  findProfile,
  getProfile,
  listProfiles,
  type ProfileList,
  profileId,
  removeProfile,
  type SkippedProfile,
  type StoredProfile,
  writeProfile,
} from './store.js'
