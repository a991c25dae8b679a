#!/usr/bin/env bash
# Against a peer: frontail (npm) and `supergrep serve` following the same kind of file
# at the same rate, 10 browser-less clients each (socket.io for frontail, WebSocket for
# supergrep, both in one Node process), then each flat out.
#
#   SUPERGREP_CORPUS=/work/shared/corpus benches/frontail.sh
#
# Needs node (v20 here) and npm. frontail, socket.io-client and ws (versions pinned in
# benches/frontail/package-lock.json) are installed with `npm ci` into a temporary
# directory that is removed at the end; nothing is installed in the repository.
# Settings (FT_RUNS, FT_RATE, FT_SECS, FT_FLAT_SECS, FT_CLIENTS, FT_FILTER, ...): see
# the top of benches/frontail/bench.js. The Markdown tables go to stdout; FT_JSON=FILE
# keeps the raw results. SUPERGREP_BIN measures another supergrep binary.
set -euo pipefail
corpus=${SUPERGREP_CORPUS:?set SUPERGREP_CORPUS to the corpus directory (holding loghub/)}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
command -v node >/dev/null || { echo "frontail.sh: node is needed" >&2; exit 2; }
command -v npm >/dev/null || { echo "frontail.sh: npm is needed" >&2; exit 2; }

if [ -z "${SUPERGREP_BIN:-}" ]; then
  cargo build --release --quiet --manifest-path "$root/Cargo.toml"
  SUPERGREP_BIN=${CARGO_TARGET_DIR:-$root/target}/release/supergrep
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$root"/benches/frontail/{package.json,package-lock.json,*.js} "$work/"
(cd "$work" && npm ci --no-audit --no-fund --loglevel=error >&2)

echo "node $(node --version), frontail $(node -p 'require("'"$work"'/node_modules/frontail/package.json").version')," \
  "socket.io $(node -p 'require("'"$work"'/node_modules/socket.io/package.json").version')," \
  "socket.io-client $(node -p 'require("'"$work"'/node_modules/socket.io-client/package.json").version')," \
  "ws $(node -p 'require("'"$work"'/node_modules/ws/package.json").version')," \
  "$("$SUPERGREP_BIN" --version), $(nproc) cores" >&2

SUPERGREP_CORPUS=$corpus SUPERGREP_BIN=$SUPERGREP_BIN FRONTAIL_JS=$work/node_modules/frontail/index.js \
  node "$work/bench.js"
