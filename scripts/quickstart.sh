#!/usr/bin/env bash
# velo on its embedded default: installs Node and the dependencies, builds velo's llama.cpp engine
# (cached after the first time), synthesizes a model when none is given, and runs one chat.
# Pass a GGUF path and a prompt to use your own model: scripts/quickstart.sh model.gguf "Hello"
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/node-env.sh
exec node bin/run.js run "$@"
