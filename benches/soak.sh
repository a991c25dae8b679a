#!/usr/bin/env bash
# Soak run of the hub (issue 25 §6; not in CI): a hub following a file and taking
# syslog over TCP and UDP, three agents, 150 steady and 50 churning WebSocket clients,
# one hostile client, rotations, for a set time. At the end it prints lines written
# against delivered + dropped per client, and the hub's RSS and descriptors at start
# and end; it exits 1 if the accounting fails or RSS or descriptors grew beyond
# their margins. What it runs and measures: benches/soak.rs.
#
#   benches/soak.sh              # 600 s
#   benches/soak.sh 180          # or SOAK_SECS=180
#   SOAK_REPORT=1 benches/soak.sh   # also rewrites BENCHMARKS.md's "Soak" section
#
# Other knobs (environment): SOAK_RATE (lines/s per source, 100), SOAK_ROTATE_SECS
# (30), SOAK_RSS_MARGIN (0.25 of the start, plus 16 MiB), SOAK_FD_MARGIN (8),
# SUPERGREP_BIN (default: the release binary `cargo bench` builds).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
secs=${1:-${SOAK_SECS:-600}}
exec cargo bench --locked --bench soak -- "$secs"
