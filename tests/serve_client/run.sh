#!/usr/bin/env bash
# Runs openai_client.mjs when its packages are installed (tests/fetch_test_packages.sh); otherwise skips (77),
# except under CI=true, where a missing client is a failure.
dir="$(cd "$(dirname "$0")" && pwd)"
if [ ! -f "$dir/node_modules/openai/package.json" ] || ! command -v node >/dev/null; then
  echo "the openai npm package or node is missing: run tests/fetch_test_packages.sh"
  [ "${CI:-}" = true ] && exit 1
  exit 77
fi
exec node "$dir/openai_client.mjs" "$@"
