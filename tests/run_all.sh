#!/usr/bin/env bash
# Runs every test suite twice: an optimised build, then an AddressSanitizer + UndefinedBehaviorSanitizer build.
# Prints one closing line "N passed, N failed, K skipped" over both runs.
set -uo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
passed=0; failed=0; skipped=0
phase_start=$SECONDS
phase() {  # name: prints how long the phase before this call took
  echo "[run_all] $1: $((SECONDS - phase_start)) s"
  phase_start=$SECONDS
}
run_build() {  # dir, meson options... (an existing build directory takes the options again)
  local dir=$1; shift
  if [ -d "$dir" ]; then meson configure "$dir" "$@" >/dev/null || return 1
  else meson setup "$dir" "$@" >/dev/null || return 1; fi
  rm -f "$dir/meson-logs/testlog.json"
  ninja -C "$dir" -j "$jobs" >/dev/null || { ninja -C "$dir" -j 1 | tail -40; return 1; }
  meson test -C "$dir" --print-errorlogs --num-processes "$jobs"
}
count() {  # dir: adds the results of the meson test run in dir (a test that must fail and does counts as passed)
  local log=$1/meson-logs/testlog.json
  [ -f "$log" ] || { failed=$((failed + 1)); return; }
  passed=$((passed + $(grep -cE '"result": "(OK|EXPECTEDFAIL)"' "$log")))
  failed=$((failed + $(grep -vcE '"result": "(OK|EXPECTEDFAIL|SKIP)"' "$log")))
  # A suite whose --source-file filter matched no test case ran nothing: a failure, not a pass.
  failed=$((failed + $(grep -cE '\[doctest\] test cases: +0 \|' "$log")))
  # Skipped: whole suites (exit 77) and test cases that said "SKIPPED:" (doctest's own skipped count also holds the
  # cases of the other suites, which each suite's --source-file filter leaves out).
  skipped=$((skipped + $(grep -cE '"result": "SKIP"' "$log") + $(grep -o 'SKIPPED: ' "$log" | wc -l)))
}
hwy_targets_to_skip() {  # prints the Highway targets the sanitizer build leaves out, as a bit mask (see below)
  local probe; probe=$(mktemp) || return 1
  printf '%s\n' '#define HWY_WANT_AVX3_DL' '#include <hwy/targets.h>' '#include <cstdio>' \
    'int main() {' \
    '  const long long runnable = hwy::SupportedTargets() & HWY_TARGETS, best = runnable & -runnable;' \
    '  std::printf("%lldLL", ~(best | HWY_AVX2 | HWY_STATIC_TARGET | HWY_SCALAR | HWY_EMU128));' \
    '}' | c++ -x c++ - -o "$probe" $(pkg-config --cflags --libs libhwy) && "$probe"
  local rc=$?; rm -f "$probe"; return $rc
}
tests/fetch_gemma3_tokenizer.sh || echo "warning: no Gemma 3 tokenizer.json; test_text skips its cases"
tests/fetch_test_packages.sh || echo "warning: npm packages missing; the serve-openai-client and serve-web-chat tests skip"
phase "test data and packages"
# The release build also compiles the benchmarks (not run), so a compiler or library change cannot break them unseen.
# Both builds are unity builds: the suites share a few translation units (tests/meson.build says why).
run_build build -Dbuildtype=release -Dbenches=true -Dunity=on -Dunity_size=7 && true; count build
phase "release build and tests"
# -g1: line tables only, enough for the sanitizers' stack traces; full -g spent 3/4 of the kernels' compile
# tracking variables nobody reads. -O1: the sanitizers' usual level. The kernels' translation unit is the costliest,
# one compile of every kernel per Highway target (AVX3 and AVX3_DL hold 3/4 of its code): this build compiles the
# best target this CPU runs (what users of the CPU get), AVX2 (which G4_KERNELS=AVX2 tests force) and the portable
# baseline. On the 2-core Zen 3 that is 271 CPU-s instead of 825 with AVX3 and AVX3_DL. The release build above
# compiles and checks every target the CPU runs.
disabled_targets=$(hwy_targets_to_skip) || { echo "[run_all] cannot list this CPU's Highway targets"; exit 1; }
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  run_build build-asan -Dbenches=false -Dunity=on -Dunity_size=7 -Doptimization=1 -Ddebug=true -Db_ndebug=false \
    "-Dcpp_args=['-g1', '-DHWY_DISABLED_TARGETS=($disabled_targets)']" -Db_sanitize=address,undefined -Db_lundef=false
count build-asan
phase "sanitizer build and tests"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
