#!/usr/bin/env bash
# Every benchmark suite in one go, each against its baseline in the same run:
#
#   SUPERGREP_CORPUS=/work/shared/corpus benches/all.sh
#
# 1. scan         benches/compare.sh    supergrep --no-follow vs ripgrep (needs `rg`)
# 2. matcher      cargo bench matcher   ns/line at 1…5,000 patterns (criterion)
# 3. latency      cargo bench latency   append → output, terminal and WebSocket, vs tail -F | grep
# 4. fan-out      cargo bench fanout    1/100/1,000 WebSocket clients vs tail -F | grep
# 5. agent        benches/agent.sh      agent → hub ingest vs the hub tailing locally
# 6. frontail     benches/frontail.sh   a peer, 10 clients each (needs node and npm)
# 7. files        benches/files.sh      many files vs tail -F (busy, idle, start-up)
#
# Each suite prints its Markdown table (fanout and latency also rewrite their own
# section of BENCHMARKS.md); everything printed is also kept in
# target/bench-report.md. ONLY="scan agent" runs a subset. The machine should be
# otherwise idle: the suites report others' CPU where it matters, and ratios, not
# absolute figures, are what carries from one machine to another.
set -euo pipefail
: "${SUPERGREP_CORPUS:?set SUPERGREP_CORPUS to the corpus directory (holding loghub/ and patterns/)}"
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
only=${ONLY:-scan matcher latency fanout agent frontail files}
report=$root/target/bench-report.md
mkdir -p "$root/target"
{
  echo "# supergrep benchmarks, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(git rev-parse --short HEAD)"
} > "$report"

run() {
  local name=$1
  shift
  case " $only " in *" $name "*) ;; *) return 0 ;; esac
  echo "== $name: $*" | tee -a "$report"
  "$@" 2>&1 | tee -a "$report"
}

cargo build --release --quiet
run scan benches/compare.sh
run matcher cargo bench --bench matcher
run latency cargo bench --bench latency
run fanout cargo bench --bench fanout
run agent benches/agent.sh
run frontail benches/frontail.sh
run files benches/files.sh
echo "report: $report"
