#!/usr/bin/env bash
# Line coverage of the parsers (include/g4/io, text, media) by the fuzz corpora: builds the harnesses with clang's
# source-based coverage in BUILD (default build-fuzz-cov), replays each corpus once (-runs=0), and prints
# llvm-cov's per-file report. The corpora come from FUZZ_BUILD (default build-fuzz; fill them with run.sh).
#   tests/fuzz/coverage.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${BUILD:-build-fuzz-cov}
corpora=${FUZZ_BUILD:-build-fuzz}/fuzz-corpus
[ -d "$corpora" ] || { echo "no corpora in $corpora: run tests/fuzz/run.sh first" >&2; exit 1; }
if [ ! -d "$build" ]; then
  CXX=clang++ meson setup "$build" -Dfuzz=true -Dtests=false -Dexamples=false -Dbenches=false \
    -Dbuildtype=debugoptimized -Dcpp_args='-fprofile-instr-generate -fcoverage-mapping' \
    -Dcpp_link_args='-fprofile-instr-generate' >/dev/null
fi
ninja -C "$build" >/dev/null
profiles=$build/profiles
rm -rf "$profiles" && mkdir -p "$profiles"
export G4_TEST_DATA=$PWD/tests/data
objects=()
for exe in "$build"/tests/fuzz/fuzz_*; do
  [ -x "$exe" ] && [ -f "$exe" ] || continue
  h=${exe##*/fuzz_}
  LLVM_PROFILE_FILE="$profiles/$h-%p.profraw" "$exe" -runs=0 -rss_limit_mb=4096 -max_len=5000000 \
    "$corpora/$h" >/dev/null 2>&1 || echo "warning: $h exited non-zero while replaying" >&2
  objects+=(-object "$exe")
done
llvm-profdata-14 merge -sparse "$profiles"/*.profraw -o "$profiles/all.profdata"
# Only the parsers' folders: everything else the harnesses compile (core, model, the harnesses, system headers) is
# left out of the report.
llvm-cov-14 report "${objects[@]:1}" -instr-profile="$profiles/all.profdata" \
  -ignore-filename-regex='(include/g4/(core|model|kernels)/|tests/|^/usr/)'

