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
tests/fetch_gemma3_tokenizer.sh || echo "warning: no Gemma 3 tokenizer.json; test_text skips its cases"
tests/fetch_test_packages.sh || echo "warning: npm packages missing; the serve-openai-client and serve-web-chat tests skip"
phase "test data and packages"
# The release build also compiles the benchmarks (not run), so a compiler or library change cannot break them unseen.
# Both builds are unity builds: the suites share a few translation units (tests/meson.build says why).
run_build build -Dbuildtype=release -Dbenches=true -Dunity=on -Dunity_size=7 && true; count build
phase "release build and tests"
# -g1: line tables only, enough for the sanitizers' stack traces; full -g spent 3/4 of the kernels' compile
# tracking variables nobody reads. -O1: the sanitizers' usual level. The kernels' translation unit is still the
# costliest (825 CPU-s under ASan on the 2-core Zen 3): it leaves out Highway's SSSE3 and SSE4 targets, which a
# machine with AVX2 never dispatches to; AVX2 and the AVX-512 targets are compiled and checked under the
# sanitizers here, every target in the release build.
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  run_build build-asan -Dbenches=false -Dunity=on -Dunity_size=7 -Doptimization=1 -Ddebug=true -Db_ndebug=false \
    "-Dcpp_args=['-g1', '-DHWY_DISABLED_TARGETS=(HWY_SSSE3|HWY_SSE4)']" -Db_sanitize=address,undefined -Db_lundef=false
count build-asan
phase "sanitizer build and tests"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
