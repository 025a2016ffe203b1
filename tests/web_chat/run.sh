#!/usr/bin/env bash
# Runs chat_page.mjs when puppeteer-core (tests/fetch_test_packages.sh) and Debian's chromium are installed;
# otherwise skips (77), except under CI=true, where either missing is a failure.
# usage: run.sh G4_EXE TESTS_DATA_DIR SCREENSHOT.png
dir="$(cd "$(dirname "$0")" && pwd)"
browser="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -f "$dir/node_modules/puppeteer-core/package.json" ] || ! command -v node >/dev/null || [ ! -x "$browser" ]; then
  echo "puppeteer-core, node or $browser is missing: run tests/fetch_test_packages.sh, apt-get install chromium"
  [ "${CI:-}" = true ] && exit 1
  exit 77
fi
exec node "$dir/chat_page.mjs" "$@"
