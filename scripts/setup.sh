#!/usr/bin/env bash
# Install what velo needs to build and run: Node >= 22, the npm dependencies, the compiled CLI.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/node-env.sh
echo "velo: node $(node --version), npm $(npm --version)" >&2
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund >&2
fi
npm run --silent build >&2
