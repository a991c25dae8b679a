#!/usr/bin/env bash
# Many files, one busy: the CPU a follower spends when one file is written to
# FILES_RATE times a second (10 lines each) while FILES_IDLE other files in the same
# glob stay idle, against the same follower with the busy file alone. `tail -F` on
# the same files is the baseline, in the same run.
#
#   benches/files.sh            (FILES_IDLE=200 FILES_RATE=1000 FILES_SECS=8 FILES_RUNS=3)
#
# Then an idle tree: FILES_TREE empty files in FILES_TREE_DIRS directories, followed
# through `DIR/**/*.log` for FILES_TREE_SECS with nothing written (`tail -F` is given
# every file by name): what following costs when nothing happens.
#
# Last, start-up on a big tree: FILES_START empty files in FILES_START_DIRS
# directories; the time from starting the follower until a line appended to the
# last file comes out (appended every 20 ms until it does; keep FILES_START under
# the hard limit on open files, `ulimit -Hn`, or the last file is never opened).
#
# Needs python3 (the writer). SUPERGREP_BIN measures another supergrep binary. Reports
# the median CPU of FILES_RUNS runs, alternating the followers.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
idle=${FILES_IDLE:-200}
rate=${FILES_RATE:-1000}
secs=${FILES_SECS:-8}
runs=${FILES_RUNS:-3}
tree=${FILES_TREE:-5000}
tree_dirs=${FILES_TREE_DIRS:-50}
tree_secs=${FILES_TREE_SECS:-10}
start_files=${FILES_START:-15000}
start_dirs=${FILES_START_DIRS:-100}
if [ -z "${SUPERGREP_BIN:-}" ]; then
  cargo build --release --quiet --manifest-path "$root/Cargo.toml"
  SUPERGREP_BIN=${CARGO_TARGET_DIR:-$root/target}/release/supergrep
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ticks=$(getconf CLK_TCK)

# cpu_of FOLLOWER NFILES: CPU seconds the follower used while the writer ran.
cpu_of() {
  local follower=$1 n=$2 dir="$work/d$RANDOM$RANDOM" pid
  mkdir "$dir"
  for i in $(seq 1 "$n"); do echo "idle file $i" > "$dir/idle$i.log"; done
  : > "$dir/busy.log"
  case $follower in
    supergrep) "$SUPERGREP_BIN" -e zq9zq9zq "$dir/*.log" > /dev/null 2>&1 & pid=$! ;;
    tail) tail -q -n0 -F "$dir"/*.log > /dev/null 2>&1 & pid=$! ;;
  esac
  sleep 1
  local before after
  read -r -a st < "/proc/$pid/stat"; before=$((st[13] + st[14]))
  python3 - "$dir/busy.log" "$rate" "$secs" <<'PY'
import os, sys, time
path, rate, secs = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
line = b"Dec 10 09:11:45 LabSZ sshd[24456]: Failed password for root from 1.2.3.4 port 22 ssh2\n"
fd = os.open(path, os.O_WRONLY | os.O_APPEND)
start = time.monotonic(); k = 0
while time.monotonic() - start < secs:
    os.write(fd, line * 10); k += 1
    pause = start + k / rate - time.monotonic()
    if pause > 0:
        time.sleep(pause)
PY
  sleep 0.5
  read -r -a st < "/proc/$pid/stat"; after=$((st[13] + st[14]))
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
  awk -v t=$((after - before)) -v hz="$ticks" 'BEGIN { printf "%.2f\n", t / hz }'
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A cpu
for follower in supergrep tail; do
  for n in 0 "$idle"; do cpu[$follower,$n]=""; done
done
for r in $(seq 1 "$runs"); do
  for follower in supergrep tail; do
    for n in 0 "$idle"; do
      cpu[$follower,$n]+="$(cpu_of "$follower" "$n") "
    done
  done
done

echo "$($SUPERGREP_BIN --version), $(tail --version | head -1), $(nproc) cores;" \
  "$rate writes/s of 10 lines for $secs s, median of $runs runs" >&2
echo "| follower | files followed | CPU (s) | CPU % | vs the busy file alone | vs \`tail -F\` on the same files |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
med() { tr ' ' '\n' <<< "${cpu[$1,$2]}" | grep . | median; }
ratio() { awk -v c="$1" -v a="$2" 'BEGIN { if (a > 0) printf "%.2fx", c / a; else printf "(baseline 0)" }'; }
for follower in supergrep tail; do
  label=$([ "$follower" = tail ] && echo '`tail -F`' || echo '`supergrep -e`')
  for n in 0 "$idle"; do
    c=$(med "$follower" "$n")
    pct=$(awk -v c="$c" -v s="$secs" 'BEGIN { printf "%.1f", 100 * c / s }')
    echo "| $label | $((n + 1)) | $c | $pct% | $(ratio "$c" "$(med "$follower" 0)") | $(ratio "$c" "$(med tail "$n")") |"
  done
done

# idle_cpu_of FOLLOWER: CPU seconds the follower used over FILES_TREE_SECS, idle.
idle_cpu_of() {
  local follower=$1 dir="$work/t$RANDOM$RANDOM" pid
  for d in $(seq 1 "$tree_dirs"); do
    mkdir -p "$dir/d$d"
    for i in $(seq 1 $((tree / tree_dirs))); do : > "$dir/d$d/f$i.log"; done
  done
  case $follower in
    supergrep) "$SUPERGREP_BIN" -e zq9zq9zq "$dir/**/*.log" > /dev/null 2>&1 & pid=$! ;;
    tail) tail -q -n0 -F "$dir"/*/*.log > /dev/null 2>&1 & pid=$! ;;
  esac
  sleep 3
  local before after
  read -r -a st < "/proc/$pid/stat"; before=$((st[13] + st[14]))
  sleep "$tree_secs"
  read -r -a st < "/proc/$pid/stat"; after=$((st[13] + st[14]))
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
  awk -v t=$((after - before)) -v hz="$ticks" 'BEGIN { printf "%.2f\n", t / hz }'
}

# Both followers hold every file open.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$tree" -gt 0 ]; then
  for follower in supergrep tail; do cpu[$follower,tree]=""; done
  for r in $(seq 1 "$runs"); do
    for follower in supergrep tail; do
      cpu[$follower,tree]+="$(idle_cpu_of "$follower") "
    done
  done
  echo
  echo "Idle: $((tree / tree_dirs * tree_dirs)) empty files in $tree_dirs directories, nothing written for $tree_secs s" >&2
  echo "| follower | files followed | CPU (s) | CPU % | vs \`tail -F\` |"
  echo "| --- | ---: | ---: | ---: | ---: |"
  for follower in supergrep tail; do
    label=$([ "$follower" = tail ] && echo '`tail -F`' || echo '`supergrep -e` (`**`)')
    c=$(med "$follower" tree)
    pct=$(awk -v c="$c" -v s="$tree_secs" 'BEGIN { printf "%.2f", 100 * c / s }')
    echo "| $label | $((tree / tree_dirs * tree_dirs)) | $c | $pct% | $(ratio "$c" "$(med tail tree)") |"
  done
fi

# startup_of FOLLOWER DIR: seconds from start until a line appended to DIR's last
# file is printed.
startup_of() {
  local follower=$1 dir=$2
  python3 - "$follower" "$SUPERGREP_BIN" "$dir" "$start_dirs" "$((start_files / start_dirs))" <<'PY'
import os, subprocess, sys, time, selectors
follower, binary, d, dirs, per = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
# Zero-padded: the last in sorted order (supergrep's) and in tail's argument order.
name = lambda i, j: os.path.join(d, "d%03d" % i, "f%05d.log" % j)
last = name(dirs, per)
if follower == "supergrep":
    cmd = [binary, "-e", "zq9mark", os.path.join(d, "**/*.log")]
else:
    files = [name(i, j) for i in range(1, dirs + 1) for j in range(1, per + 1)]
    cmd = ["tail", "-q", "-n0", "-F"] + files
start = time.monotonic()
p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
sel = selectors.DefaultSelector(); sel.register(p.stdout, selectors.EVENT_READ)
while True:
    with open(last, "a") as f:
        f.write("zq9mark\n")
    if sel.select(timeout=0.02):
        break
    if time.monotonic() - start > 120:
        break
print("%.2f" % (time.monotonic() - start))
p.kill(); p.wait()
PY
}

[ "$start_files" -gt 0 ] || exit 0
sdir="$work/start"
for d in $(seq -f "%03g" 1 "$start_dirs"); do
  mkdir -p "$sdir/d$d"
  (cd "$sdir/d$d" && seq -f "f%05g.log" 1 $((start_files / start_dirs)) | xargs touch)
done
for follower in supergrep tail; do cpu[$follower,start]=""; done
for r in $(seq 1 "$runs"); do
  for follower in supergrep tail; do
    cpu[$follower,start]+="$(startup_of "$follower" "$sdir") "
  done
done
echo
echo "Start-up: $((start_files / start_dirs * start_dirs)) empty files in $start_dirs directories" >&2
echo "| follower | files followed | first line from the last file after (s) | vs \`tail -F\` |"
echo "| --- | ---: | ---: | ---: |"
for follower in supergrep tail; do
  label=$([ "$follower" = tail ] && echo '`tail -F`' || echo '`supergrep -e` (`**`)')
  c=$(med "$follower" start)
  echo "| $label | $((start_files / start_dirs * start_dirs)) | $c | $(ratio "$c" "$(med tail start)") |"
done
