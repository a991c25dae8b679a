#!/usr/bin/env bash
# The fuzz properties of tests/fuzz_*.rs, long: every parser of outside input fed
# arbitrary bytes and near-valid input (fuzz_parsers), the line splitter and escaping
# (fuzz_lines), garbage at a real hub's every port and syslog's TCP framing
# (fuzz_hub), in release, with many more cases than `cargo test` runs.
#
#   benches/fuzz.sh                    # 100,000 cases per property (the hub's: 2,000)
#   CASES=1000000 HUB_CASES=10000 benches/fuzz.sh
#   ONLY="fuzz_lines" benches/fuzz.sh
#
# A failure prints the shrunk input; keep it as a `regression_` test in the file.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
cases=${CASES:-100000}
# Each hub case is real connections to a real hub: fewer.
hub_cases=${HUB_CASES:-2000}
only=${ONLY:-fuzz_parsers fuzz_lines fuzz_hub}
status=0
for t in $only; do
  n=$cases
  [ "$t" = fuzz_hub ] && n=$hub_cases
  echo "== $t: $n cases per property"
  start=$(date +%s)
  if ! PROPTEST_CASES=$n cargo test --release --locked --test "$t" -- --test-threads=2; then
    status=1
  fi
  echo "== $t: $(( $(date +%s) - start )) s"
done
exit $status
