#!/usr/bin/env bash
# The fuzz properties of tests/fuzz_*.rs, long: every parser of outside input fed
# arbitrary bytes and near-valid input (fuzz_parsers), the line splitter and escaping
# (fuzz_lines), garbage at a real hub's every port and syslog's TCP framing
# (fuzz_hub), in release, with many more cases than `cargo test` runs.
#
#   benches/fuzz.sh                        # 100,000 cases per property
#   CASES=1000000 benches/fuzz.sh
#   ONLY="fuzz_lines" THREADS=1 benches/fuzz.sh
#
# Properties whose case starts a process or makes real connections (the hub's, the
# stdin reader's) run a fiftieth of CASES.
# A failure prints the shrunk input; keep it as a `regression_` test in the file.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
cases=${CASES:-100000}
only=${ONLY:-fuzz_parsers fuzz_lines fuzz_hub}
threads=${THREADS:-2}
status=0
for t in $only; do
  echo "== $t: SUPERGREP_FUZZ_CASES=$cases"
  start=$(date +%s)
  if ! SUPERGREP_FUZZ_CASES=$cases cargo test --release --locked --test "$t" -- --test-threads="$threads"; then
    status=1
  fi
  echo "== $t: $(( $(date +%s) - start )) s"
done
exit $status
