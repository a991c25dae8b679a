#!/usr/bin/env bash
# Scan speed of `supergrep --no-follow` against ripgrep, same file, same patterns, one
# run. Needs nothing but bash, coreutils, cargo and rg.
#
#   SUPERGREP_CORPUS=/work/shared/corpus benches/compare.sh
#
# Settings (environment):
#   SUPERGREP_CORPUS  the benchmark corpus: the directory holding loghub/ and patterns/
#   SIZE_MB           size of the test file in MB (default 1024)
#   RUNS              timed runs per tool and pattern set; the median is reported (3)
#   LONG_PATTERNS     size of the derived long pattern list (default 1000)
#   TMPDIR            where the test file goes (default /tmp); removed at the end
#                     unless KEEP=1
#   SUPERGREP_BEFORE  an older supergrep binary (the build before a change): timed
#                     in the same runs, interleaved, its output checked to be the
#                     same; a column gives this build's speed over it
#
# The test file is the eight Loghub samples with `\r` stripped (LF lines, like real
# Linux logs), repeated until it reaches SIZE_MB. For each pattern set both tools run
# once untimed (warms the page cache; its output's line count and checksum must be
# the same for both tools), then RUNS times with output piped to `wc -l`. As a
# reference for the machine, the same file is read by `cat > /dev/null` (page cache
# to memory) and counted by `wc -l` (memchr speed).
set -euo pipefail

corpus=${SUPERGREP_CORPUS:?set SUPERGREP_CORPUS to the corpus directory (holding loghub/ and patterns/)}
size_mb=${SIZE_MB:-1024}
runs=${RUNS:-3}
long_n=${LONG_PATTERNS:-1000}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if [ -z "${EPOCHREALTIME:-}" ]; then
  echo "needs bash 5 or later (for \$EPOCHREALTIME)" >&2
  exit 2
fi
if ! command -v rg >/dev/null; then
  echo "ripgrep (rg) is not on PATH: install it with  cargo install ripgrep --locked" >&2
  exit 2
fi
for f in "$corpus"/patterns/errors.txt "$corpus"/patterns/loghub-templates.txt; do
  [ -r "$f" ] || { echo "cannot read $f (is SUPERGREP_CORPUS right?)" >&2; exit 2; }
done

echo "building supergrep (release)..." >&2
(cd "$root" && cargo build --release --quiet --bin supergrep)
sg="$root/target/release/supergrep"

work=$(mktemp -d "${TMPDIR:-/tmp}/supergrep-compare.XXXXXX")
if [ "${KEEP:-0}" != 1 ]; then
  trap 'rm -rf "$work"' EXIT
fi

# --- the test file --------------------------------------------------------------
seed="$work/seed.log"
for f in "$corpus"/loghub/*.log; do
  tr -d '\r' <"$f" >>"$seed"
  # Most samples lack a final newline; do not glue two lines together.
  [ "$(tail -c 1 "$seed" | od -An -c | tr -d ' ')" = '\n' ] || echo >>"$seed"
done
file="$work/big.log"
target=$((size_mb * 1000 * 1000))
: >"$file"
# Double a chunk up to ~1/8 of the target, then append it: few processes, whole lines.
chunk="$work/chunk.log"
cp "$seed" "$chunk"
while [ $(($(stat -c %s "$chunk") * 8)) -lt "$target" ]; do
  cat "$chunk" "$chunk" >"$chunk.2"
  mv "$chunk.2" "$chunk"
done
while [ "$(stat -c %s "$file")" -lt "$target" ]; do
  if [ $(($(stat -c %s "$file") + $(stat -c %s "$chunk"))) -le "$target" ]; then
    cat "$chunk" >>"$file"
  else
    cat "$seed" >>"$file"
  fi
done
rm -f "$chunk"
bytes=$(stat -c %s "$file")
lines=$(wc -l <"$file")
echo "test file: $file, $bytes bytes, $lines lines" >&2

# --- pattern sets ---------------------------------------------------------------
printf '%s\n' 'Failed password' >"$work/literal.txt"
cp "$corpus/patterns/errors.txt" "$work/errors.txt"
cp "$corpus/patterns/loghub-templates.txt" "$work/templates.txt"
# The long list, derived as benches/matcher.rs does: errors.txt, then every template
# (in the order i*97 mod 460, which mixes the datasets), then variants of the
# templates that never match: "w<j>x <template>" for even j, "<template> w<j>x" for
# odd j, so the list has the shape of real patterns but distinct members.
mapfile -t errs <"$corpus/patterns/errors.txt"
mapfile -t tpls <"$corpus/patterns/loghub-templates.txt"
{
  out=0
  for p in "${errs[@]}"; do
    [ "$out" -lt "$long_n" ] || break
    printf '%s\n' "$p"
    out=$((out + 1))
  done
  n=${#tpls[@]}
  for ((i = 0; i < n && out < long_n; i++)); do
    printf '%s\n' "${tpls[$((i * 97 % n))]}"
    out=$((out + 1))
  done
  for ((j = 0; out < long_n; j++)); do
    t=${tpls[$((j % n))]}
    if ((j % 2 == 0)); then printf 'w%dx %s\n' "$j" "$t"; else printf '%s w%dx\n' "$t" "$j"; fi
    out=$((out + 1))
  done
} >"$work/long.txt"

# --- timing helpers -------------------------------------------------------------
now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }

# Runs "$@" (a command line whose stdout is piped to wc -l); prints "µs lines".
timed() {
  local start end n
  start=$(now_us)
  n=$("$@" | wc -l)
  end=$(now_us)
  echo "$((end - start)) $n"
}

median() { printf '%s\n' "$@" | sort -n | head -n $((($# + 1) / 2)) | tail -n 1; }

# bytes per µs is MB/s (10^6 bytes); one decimal.
mbps() { local x=$((bytes * 10 / $1)); echo "$((x / 10)).$((x % 10))"; }

run_sg() { "$sg" --no-follow --no-filename --color never -f "$1" "$file"; }
run_rg() { rg --no-filename --color never -f "$1" "$file"; }
before=${SUPERGREP_BEFORE:-}
run_before() { "$before" --no-follow --no-filename --color never -f "$1" "$file"; }

# --- reference: memory bandwidth ------------------------------------------------
cat "$file" >/dev/null # page cache warm
cat_times=() wc_times=()
for ((r = 0; r < runs; r++)); do
  s=$(now_us); cat "$file" >/dev/null; e=$(now_us); cat_times+=($((e - s)))
  s=$(now_us); wc -l <"$file" >/dev/null; e=$(now_us); wc_times+=($((e - s)))
done
cat_us=$(median "${cat_times[@]}")
wc_us=$(median "${wc_times[@]}")

# --- the comparison -------------------------------------------------------------
status=0
rows=()
for set in literal errors templates long; do
  pf="$work/$set.txt"
  npat=$(wc -l <"$pf")
  # Untimed first run of each: warms the cache and checks both print the same lines
  # (same checksum of the whole output, in file order).
  sg_sum=$(run_sg "$pf" | cksum)
  rg_sum=$(run_rg "$pf" | cksum)
  same=yes
  if [ "$sg_sum" != "$rg_sum" ]; then
    same=NO
    status=1
  fi
  if [ -n "$before" ] && [ "$(run_before "$pf" | cksum)" != "$sg_sum" ]; then
    echo "MISMATCH on $set: the build before prints other lines" >&2
    same=NO
    status=1
  fi
  sg_n= rg_n=
  sg_t=() rg_t=() before_t=()
  for ((r = 0; r < runs; r++)); do
    if [ -n "$before" ]; then
      read -r us n < <(timed run_before "$pf")
      before_t+=("$us")
    fi
    read -r us n < <(timed run_sg "$pf")
    [ -z "$sg_n" ] || [ "$n" = "$sg_n" ] || { echo "supergrep: $n lines, earlier $sg_n" >&2; status=1; }
    sg_n=$n sg_t+=("$us")
    read -r us n < <(timed run_rg "$pf")
    [ -z "$rg_n" ] || [ "$n" = "$rg_n" ] || { echo "rg: $n lines, earlier $rg_n" >&2; status=1; }
    rg_n=$n rg_t+=("$us")
  done
  if [ "$same" = NO ] || [ "$sg_n" != "$rg_n" ]; then
    same=NO
    status=1
    echo "MISMATCH on $set: supergrep $sg_n lines (cksum ${sg_sum% *}), rg $rg_n lines (cksum ${rg_sum% *})" >&2
  fi
  sg_us=$(median "${sg_t[@]}")
  rg_us=$(median "${rg_t[@]}")
  ratio=$((rg_us * 100 / sg_us))
  vs_before=
  if [ -n "$before" ]; then
    before_us=$(median "${before_t[@]}")
    b=$((before_us * 100 / sg_us))
    vs_before=$(printf '%9s %6d.%02d' "$((before_us / 1000))" $((b / 100)) $((b % 100)))
  fi
  rows+=("$(printf '%-10s %6d %10d %-5s %9s %9s %8s %8s %6d.%02d %s' \
    "$set" "$npat" "$sg_n" "$same" \
    "$((sg_us / 1000))" "$((rg_us / 1000))" "$(mbps "$sg_us")" "$(mbps "$rg_us")" \
    $((ratio / 100)) $((ratio % 100)) "$vs_before")")
done

echo
echo "file: $((bytes / 1000000)) MB, $lines lines (Loghub samples, LF); median of $runs runs; $(nproc) CPUs"
echo "rg: $(rg --version | head -n 1); supergrep: $("$sg" --version)"
echo
printf '%-10s %6s %10s %-5s %9s %9s %8s %8s %9s' \
  "set" "pats" "lines out" "same" "sg ms" "rg ms" "sg MB/s" "rg MB/s" "sg/rg"
[ -z "$before" ] && echo || printf ' %9s %9s\n' "before ms" "sg/before"
for row in "${rows[@]}"; do echo "$row"; done
echo
echo "reference: cat > /dev/null $(mbps "$cat_us") MB/s, wc -l $(mbps "$wc_us") MB/s"
echo "(sg/rg: supergrep's throughput over ripgrep's; above 1 supergrep is faster)"
[ -z "$before" ] || echo "(sg/before: this build's throughput over $before's ($("$before" --version)))"
exit "$status"
