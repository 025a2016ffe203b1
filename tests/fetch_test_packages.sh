#!/usr/bin/env bash
# Installs the npm packages the tests drive g4 serve with (tests/serve_client: the official `openai` client for
# Node, at the version and integrity hash its package-lock.json pins) into tests/serve_client/node_modules
# (git-ignored). Does nothing when they are there. Without npm or the registry it fails; the client test then
# skips (exit 77, counted as skipped), and fails under CI=true.
set -euo pipefail
dir="$(cd "$(dirname "$0")" && pwd)/serve_client"
[ -f "$dir/node_modules/openai/package.json" ] && exit 0
command -v npm >/dev/null || { echo "fetch_test_packages: npm is not installed" >&2; exit 1; }
npm ci --prefix "$dir" --no-audit --no-fund --silent
echo "fetch_test_packages: $dir/node_modules"
