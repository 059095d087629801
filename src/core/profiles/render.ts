import { exportProfile } from './export.js'
import { describeHardware } from './hardware.js'
import type { Profile } from './schema.js'
import type { ProfileList, StoredProfile } from './store.js'

function value(profile: Profile, v: number): string {
  return profile.objective.unit === 'ms' ? `${v.toFixed(0)} ms` : `${v.toFixed(1)} ${profile.objective.unit}`
}

export function renderProfileList(list: ProfileList): string {
  if (list.profiles.length === 0) return 'no profiles yet: run `velo optimize --model M` to make one'
  const rows = list.profiles.map(({ profile }) => [
    profile.id,
    profile.backend,
    profile.objective.goal,
    `x${profile.measurements.speedup.median.toFixed(2)}`,
    value(profile, profile.measurements.tuned.median),
    profile.createdAt.slice(0, 16).replace('T', ' '),
  ])
  const header = ['ID', 'BACKEND', 'GOAL', 'SPEEDUP', 'TUNED', 'CREATED']
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)))
  return [header, ...rows]
    .map((row) =>
      row
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
}

export function renderProfile({ file, profile }: StoredProfile): string {
  const m = profile.measurements
  const params = Object.entries(profile.parameters).map(([key, v]) => `${key}=${v}`)
  return [
    `${profile.id}  (${file})`,
    `model     ${profile.model.name}${profile.model.path ? ` ${profile.model.path}` : ''}`,
    `digest    ${profile.model.digest.slice(0, 16)}… (${profile.model.digestMethod})`,
    `backend   ${profile.backend}${profile.engine.version ? ` ${profile.engine.version}` : ''}`,
    `machine   ${describeHardware(profile.hardware)} [${profile.hardware.fingerprint}]`,
    `goal      ${profile.objective.goal}: ${profile.objective.metric}, concurrency ${profile.objective.concurrency}, ${profile.objective.promptTokens} prompt + ${profile.objective.genTokens} generated tokens`,
    `params    ${params.length > 0 ? params.join(' ') : '(the backend defaults)'}`,
    `baseline  ${value(profile, m.baseline.median)} [${value(profile, m.baseline.min)} .. ${value(profile, m.baseline.max)}]`,
    `tuned     ${value(profile, m.tuned.median)} [${value(profile, m.tuned.min)} .. ${value(profile, m.tuned.max)}]`,
    `speedup   x${m.speedup.median.toFixed(2)} (spread x${m.speedup.low.toFixed(2)} .. x${m.speedup.high.toFixed(2)}), ${m.trials} trials in ${m.seconds.toFixed(0)}s`,
    `created   ${profile.createdAt}`,
    `llama-server ${exportProfile(profile, 'llama-server').trim()}`,
  ].join('\n')
}
