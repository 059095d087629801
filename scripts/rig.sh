#!/usr/bin/env bash
# The real-engine rig for tests and benchmarks: velo's llama.cpp engine, Ollama and Redis.
# Everything is cached under ~/.cache keyed by version, so a second run takes seconds.
# Prints nothing on stdout; progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/node-env.sh
OLLAMA_VERSION="${VELO_OLLAMA_VERSION:-v0.17.4}"
RIG_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/velo-rig"
mkdir -p "$RIG_CACHE"

# 1. velo's embedded engine (llama-server + llama-bench), through velo itself.
engine_json="$(node bin/run.js engine install --json)"
engine_source="$(node -e 'process.stdout.write(JSON.parse(process.argv[1]).sourceDir)' "$engine_json")"

# 2. Redis from Debian.
if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "rig: installing redis-server" >&2
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >&2
  else
    echo "rig: redis-server missing and cannot apt-get install it; Redis tests will skip" >&2
  fi
fi

# 2b. Chromium from Debian: tests open velo bench's --html report in it (headless).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "rig: installing chromium" >&2
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
  else
    echo "rig: chromium missing and cannot apt-get install it; HTML report tests will skip" >&2
  fi
fi

# 3. Ollama, built from its Go module. The module zip drops llama.cpp's vendor/ headers
#    (nlohmann json, stb, miniaudio); the llama.cpp source velo's engine uses carries them.
#    -march=native: cgo compiles ggml's CPU kernels with the compiler's baseline otherwise (no
#    AVX2), which ran the small synthetic model at 6.7 tokens/s against 90 with it.
OLLAMA_BIN="$RIG_CACHE/ollama-$OLLAMA_VERSION-native/bin/ollama"
if [ ! -x "$OLLAMA_BIN" ]; then
  if command -v go >/dev/null 2>&1; then
    vendor="$engine_source/vendor"
    echo "rig: building ollama $OLLAMA_VERSION with go (several minutes, once)" >&2
    CGO_CPPFLAGS="-I$vendor" CGO_CFLAGS="-O3 -march=native" CGO_CXXFLAGS="-O3 -march=native -I$vendor" \
      GOBIN="$(dirname "$OLLAMA_BIN")" \
      go install -ldflags "-X github.com/ollama/ollama/version.Version=${OLLAMA_VERSION#v}" \
      "github.com/ollama/ollama@$OLLAMA_VERSION" >&2
  else
    echo "rig: go missing; Ollama tests will skip" >&2
  fi
fi
