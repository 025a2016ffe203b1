#!/usr/bin/env bash
# Runs fuzz harnesses, each single-process for SECONDS, and prints one line per harness: executions, wall time,
# and whether it found anything (crashing inputs land in BUILD/fuzz-artifacts/HARNESS/).
#   tests/fuzz/run.sh HARNESS|all SECONDS [extra libFuzzer flags...]
# BUILD (default build-fuzz) is a build configured with:
#   CXX=clang++ meson setup build-fuzz -Dfuzz=true -Dtests=false -Dexamples=false -Dbenches=false
# The corpora (BUILD/fuzz-corpus/HARNESS) start from tests/fuzz/seeds.py and keep what the runs add.
set -uo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 2 ] || { echo "usage: $0 HARNESS|all SECONDS [libFuzzer flags...]" >&2; exit 2; }
what=$1 seconds=$2; shift 2
build=${BUILD:-build-fuzz}
all=(gguf safetensors hf_config tokenizer_json tokenizer_encode wav image chat_template jinja available_memory)
[ "$what" = all ] && harnesses=("${all[@]}") || harnesses=("$what")
[ -d "$build/fuzz-corpus" ] || python3 tests/fuzz/seeds.py "$build/fuzz-corpus" || exit 1
ninja -C "$build" >/dev/null || exit 1
export G4_TEST_DATA=$PWD/tests/data
status=0
for h in "${harnesses[@]}"; do
  exe=$build/tests/fuzz/fuzz_$h
  [ -x "$exe" ] || { echo "$h: no harness $exe" >&2; status=1; continue; }
  mkdir -p "$build/fuzz-corpus/$h" "$build/fuzz-artifacts/$h"
  log=$build/fuzz-artifacts/$h/last.log
  # The checkpoint seeds are megabytes; the limit keeps them whole so that mutations start from valid files.
  start=$(date +%s.%N)
  "$exe" "$build/fuzz-corpus/$h" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 -max_len=5000000 \
    -print_final_stats=1 -artifact_prefix="$build/fuzz-artifacts/$h/" "$@" >"$log" 2>&1
  rc=$?
  wall=$(echo "$(date +%s.%N) - $start" | bc)
  runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$')
  result=ok
  [ $rc -ne 0 ] && { result="FOUND A PROBLEM (exit $rc; see $log)"; status=1; }
  printf '%-17s %10s executions in %6.1f s  %s\n' "$h" "${runs:-?}" "$wall" "$result"
done
exit $status
