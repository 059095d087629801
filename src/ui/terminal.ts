/**
 * Whether this run is in CI, read exactly as Ink's `is-in-ci` reads it: `CI` or
 * `CONTINUOUS_INTEGRATION` set to anything but `0` or `false` (an empty value counts). Ink draws no
 * live frames there, so a view that decided otherwise would leave a blank screen.
 */
export function inCi(env: NodeJS.ProcessEnv = process.env): boolean {
  const set = (key: string) => key in env && env[key] !== '0' && env[key] !== 'false'
  return set('CI') || set('CONTINUOUS_INTEGRATION')
}

/**
 * Whether a live view (serve's dashboard, `velo top`, the bench and optimize progress) can draw on
 * `stream`: it is a terminal and this is not CI. Input is not needed: without a terminal on stdin
 * the view still draws and its keys are off (Ctrl-C still stops it, as a signal).
 */
export function canDrawLive(
  env: NodeJS.ProcessEnv = process.env,
  stream: { isTTY?: boolean } = process.stdout,
): boolean {
  return stream.isTTY === true && !inCi(env)
}
