#!/usr/bin/env bash
# Agent -> hub ingest rate against the hub tailing the same file locally, in one run.
#
#   SUPERGREP_CORPUS=/work/shared/corpus benches/agent.sh
#
# Settings: SUPERGREP_BIN (the binary; default: this tree's release build), LINES
# (default 10000000 lines of Loghub text, 1.4 GB: with 2,000,000 the
# local run took 0.07 s, too close to the 5-20 ms of polling /metrics), RUNS (3,
# median reported). Needs about 4x the file's size free in TMPDIR.
# For each run a fresh hub starts; the file is written in full first, then the hub (or
# an agent) reads it from the start (--from-start is what an agent with an empty state
# file at offset 0 does), and the time until /metrics counts every line is measured,
# with the CPU time of each process.
set -euo pipefail
corpus=${SUPERGREP_CORPUS:?set SUPERGREP_CORPUS to the corpus directory (holding loghub/)}
lines=${LINES:-10000000}
runs=${RUNS:-3}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# SUPERGREP_BIN: another build to measure (e.g. an older commit's, alternating runs).
if [ -n "${SUPERGREP_BIN:-}" ]; then
  sg=$SUPERGREP_BIN
else
  cargo build --release --quiet --manifest-path "$root/Cargo.toml"
  sg=$root/target/release/supergrep
fi
work=$(mktemp -d)
trap 'pkill -P $$ 2>/dev/null || true; rm -rf "$work"' EXIT

cat "$corpus"/loghub/*.log | tr -d '\r' | awk 'NF' > "$work/one.log"
n1=$(wc -l < "$work/one.log")
cp "$work/one.log" "$work/big.log"
while [ "$(wc -l < "$work/big.log")" -lt "$lines" ]; do
  cat "$work/big.log" "$work/big.log" > "$work/big2.log"
  mv "$work/big2.log" "$work/big.log"
done
head -n "$lines" "$work/big.log" > "$work/data.log"
bytes=$(stat -c %s "$work/data.log")

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Moves the file in and polls /metrics every 5 ms over one kept-alive connection until
# every line is counted; prints the seconds. (Polling with a curl process per request
# took a fifth of the 2 cores, from both sides of the comparison alike.)
move_and_wait() {
  python3 - "$@" "$lines" <<'PY'
import http.client, os, sys, time
port, src, dst, want = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
conn = http.client.HTTPConnection("127.0.0.1", port)
def ingested():
    conn.request("GET", "/metrics")
    for line in conn.getresponse().read().decode().splitlines():
        if line.startswith("supergrep_lines_ingested_total"):
            return int(float(line.split()[1]))
    return 0
ingested()
t0 = time.monotonic()
os.rename(src, dst)
while ingested() < want:
    time.sleep(0.005)
print(f"{time.monotonic() - t0:.3f}")
PY
}
cpu() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# mode: local | agent ; prints "seconds hub_cpu_s agent_cpu_s". The follower starts
# on an empty directory and the file is moved in: a file that appears later is read
# from its start, by the hub's tailer and the agent's alike.
run() {
  local mode=$1 p agent=""; p=$(port)
  rm -rf "$work/d"; mkdir -p "$work/d"
  cp "$work/data.log" "$work/in.tmp"
  if [ "$mode" = local ]; then
    "$sg" serve --listen "127.0.0.1:$p" --backlog 1000 "$work/d/*.log" >/dev/null 2>&1 &
  else
    "$sg" serve --listen "127.0.0.1:$p" --backlog 1000 >/dev/null 2>&1 &
  fi
  local hub=$!
  until curl -s "http://127.0.0.1:$p/healthz" >/dev/null; do sleep 0.05; done
  if [ "$mode" = agent ]; then
    "$sg" agent --hub "ws://127.0.0.1:$p" --name bench "$work/d/*.log" >/dev/null 2>&1 &
    agent=$!
    until curl -s "http://127.0.0.1:$p/metrics" | grep -q '^supergrep_agents 1'; do sleep 0.05; done
  fi
  sleep 0.3
  local secs; secs=$(move_and_wait "$p" "$work/in.tmp" "$work/d/in.log")
  local acpu=0
  [ -n "$agent" ] && acpu=$(echo "$(cpu "$agent") / 100" | bc -l)
  echo "$secs $(echo "$(cpu $hub) / 100" | bc -l) $acpu"
  kill $hub $agent 2>/dev/null; wait $hub $agent 2>/dev/null || true
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
declare -A secs hubcpu agentcpu
for mode in local agent; do
  : > "$work/$mode.txt"
  for _ in $(seq "$runs"); do
    run "$mode" >> "$work/$mode.txt"
  done
  secs[$mode]=$(awk '{print $1}' "$work/$mode.txt" | median)
  hubcpu[$mode]=$(awk '{print $2}' "$work/$mode.txt" | median)
  agentcpu[$mode]=$(awk '{print $3}' "$work/$mode.txt" | median)
done
printf '%d lines, %.0f MB, median of %d runs, %s cores\n' "$lines" "$(echo "$bytes/1000000" | bc -l)" "$runs" "$(nproc)"
printf '| path | seconds | lines/s | hub CPU s | agent CPU s |\n| --- | ---: | ---: | ---: | ---: |\n'
for mode in local agent; do
  printf '| %s | %.2f | %.0f | %.2f | %.2f |\n' "$mode" "${secs[$mode]}" "$(echo "$lines/${secs[$mode]}" | bc -l)" "${hubcpu[$mode]}" "${agentcpu[$mode]}"
done
printf 'agent/local throughput: %.2f\n' "$(echo "${secs[local]}/${secs[agent]}" | bc -l)"
