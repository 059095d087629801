#!/usr/bin/env bash
# velo on its embedded default: installs Node and the dependencies, builds velo, starts `velo serve`
# (a managed llama-server on velo's synthetic model; velo's llama.cpp engine is built on first use),
# sends one chat through the official openai client, prints it, and stops velo.
#   scripts/quickstart.sh                          one chat, then stop
#   scripts/quickstart.sh --keep                   keep serving on http://127.0.0.1:8000 (Ctrl-C stops)
#   scripts/quickstart.sh --model m.gguf --prompt "Hello"   your own GGUF file and question
set -euo pipefail
cd "$(dirname "$0")/.."
keep=0
model=""
prompt="Write a haiku about fast local inference."
while [ $# -gt 0 ]; do
  case "$1" in
    --keep) keep=1 ;;
    --model) model="$2"; shift ;;
    --prompt) prompt="$2"; shift ;;
    *) echo "usage: scripts/quickstart.sh [--keep] [--model FILE.gguf] [--prompt TEXT]" >&2; exit 2 ;;
  esac
  shift
done
bash scripts/setup.sh
source scripts/node-env.sh
port="${VELO_PORT:-8000}"
args=(serve --port "$port" --no-tui --no-detect-ollama)
if [ -n "$model" ]; then args+=(--model "$model"); fi
# velo's logs (and the engine build's progress) on stderr; the answer on stdout.
node bin/run.js "${args[@]}" >&2 &
velo_pid=$!
trap 'kill "$velo_pid" 2>/dev/null || true; wait "$velo_pid" 2>/dev/null || true' EXIT
VELO_URL="http://127.0.0.1:$port" VELO_PID="$velo_pid" PROMPT="$prompt" node scripts/quickstart-chat.mjs
if [ "$keep" = 1 ]; then
  echo "velo serve is running on http://127.0.0.1:$port (OpenAI API under /v1, Ollama API under /api); Ctrl-C stops it" >&2
  wait "$velo_pid"
fi
