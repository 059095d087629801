#!/usr/bin/env bash
# The whole test suite on a fresh clone: installs Node, dependencies and the engine rig, then npm test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/rig.sh
source scripts/node-env.sh
export VELO_TEST_REPORT="${VELO_TEST_REPORT:-$(mktemp -d)}"
status=0
npm test || status=$?
node scripts/test-summary.mjs "$VELO_TEST_REPORT"
exit "$status"
