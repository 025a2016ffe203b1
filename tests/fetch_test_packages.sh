#!/usr/bin/env bash
# Installs the npm packages the tests drive g4 serve with, each at the version and integrity hash its
# package-lock.json pins, into its folder's node_modules (git-ignored): tests/serve_client (the official `openai`
# client for Node) and tests/web_chat (puppeteer-core, which drives Debian's chromium and downloads no browser).
# Does nothing for a folder that has them. Without npm or the registry it fails; those tests then skip (exit 77,
# counted as skipped), and fail under CI=true.
set -euo pipefail
tests="$(cd "$(dirname "$0")" && pwd)"
for pkg in serve_client/openai web_chat/puppeteer-core; do
  dir="$tests/${pkg%%/*}"
  [ -f "$dir/node_modules/${pkg#*/}/package.json" ] && continue
  command -v npm >/dev/null || { echo "fetch_test_packages: npm is not installed" >&2; exit 1; }
  npm ci --prefix "$dir" --no-audit --no-fund --silent
  echo "fetch_test_packages: $dir/node_modules"
done
