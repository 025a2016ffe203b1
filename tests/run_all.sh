#!/usr/bin/env bash
# Runs every test suite once, in one build under AddressSanitizer + UndefinedBehaviorSanitizer that also compiles the
# benchmarks (not run). Prints each phase's time and one closing line "N passed, N failed, K skipped".
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
# One build, every Highway target compiled: the kernels at the sanitizers' usual -O1, the programs at -Og (half the
# compile of -O1; at -O0, a third, their quantizers and tokenizers ran 2-5x slower), line tables only (-g1: enough for
# the sanitizers' stack traces; full -g spent 3/4 of the kernels' compile tracking variables nobody reads). The
# kernel suites check every target this CPU runs against the scalar references; the parts of targets it cannot run
# (AVX-512 on a CPU without it) compile uninstrumented at -O0, only to prove they compile (meson option
# sanitize_kernels); the g4 program links the kernels uninstrumented (meson.build says why). Until 2026-12-07 an
# optimised build ran every suite a second time first, for half of CI's 44 minutes (docs/performance.md); the
# README's first command builds that one. Unity build: the suites make two programs and g4 one, each one translation
# unit (tests/meson.build says why); the kernels compile as four units (meson.build), so both of CI's cores share them.
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  run_build build-asan -Dbenches=true -Dunity=on -Dunity_size=7 -Doptimization=g -Ddebug=true -Db_ndebug=false \
    "-Dcpp_args=['-g1']" -Db_sanitize=address,undefined -Db_lundef=false
count build-asan
phase "sanitizer build and tests"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
