#!/bin/bash
# The consumer program built against g4rt as a meson subproject, then against the pkg-config file of an
# installation into a temporary prefix (PKG_CONFIG_PATH pointing only there); each build must tokenize as Hugging
# Face tokenizers did (demo_reference.json). Cost: two compiles of the tokenizer headers, no kernels.
# usage: run.sh SOURCE_ROOT DATA_DIR
set -euo pipefail
root=$(cd "$1" && pwd) data=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The first two reference cases: their texts, and the ids Hugging Face tokenizers gave, one line each.
cases() { python3 -c 'import json, sys; print(*[c[sys.argv[2]] for c in json.load(open(sys.argv[1]))["tokenizer_cases"][:2]], sep="\0", end="")' \
  "$data/demo/demo_reference.json" "$1"; }
want=$(python3 -c 'import json, sys; [print(*c["ids"]) for c in json.load(open(sys.argv[1]))["tokenizer_cases"][:2]]' \
  "$data/demo/demo_reference.json")
mapfile -d '' texts < <(cases text)

run() {  # $1: how g4rt was found
  local got
  got=$("$tmp/$1/build/consumer" "$data/demo/tokenizer.json" "${texts[@]}" | sed 's/ *$//')
  if [ "$got" != "$want" ]; then echo "FAIL $1: got '$got', want '$want'"; exit 1; fi
  echo "ok   $1: $(echo $got)"
}

mkdir -p "$tmp/subproject/subprojects"
cp "$root"/tests/consumer/{meson.build,meson_options.txt,main.cpp} "$tmp/subproject/"
ln -s "$root" "$tmp/subproject/subprojects/g4rt"
meson setup "$tmp/subproject/build" "$tmp/subproject" -Dfrom=subproject > "$tmp/log" || { cat "$tmp/log"; exit 1; }
ninja -C "$tmp/subproject/build" >> "$tmp/log" || { cat "$tmp/log"; exit 1; }
run subproject

meson setup "$tmp/g4rt-build" "$root" --prefix "$tmp/prefix" -Dtests=false -Dexamples=false -Dbenches=false > "$tmp/log" \
  || { cat "$tmp/log"; exit 1; }
meson install -C "$tmp/g4rt-build" > "$tmp/log" || { cat "$tmp/log"; exit 1; }
pc=$(dirname "$(find "$tmp/prefix" -name g4rt.pc)")
mkdir -p "$tmp/pkg-config"
cp "$root"/tests/consumer/{meson.build,meson_options.txt,main.cpp} "$tmp/pkg-config/"
PKG_CONFIG_PATH=$pc meson setup "$tmp/pkg-config/build" "$tmp/pkg-config" -Dfrom=pkg-config > "$tmp/log" || { cat "$tmp/log"; exit 1; }
ninja -C "$tmp/pkg-config/build" >> "$tmp/log" || { cat "$tmp/log"; exit 1; }
run pkg-config
# Headers found in /usr/include would hide a missing requirement from the build above, so the file must name them.
requires=$(PKG_CONFIG_PATH=$pc pkg-config --print-requires g4rt) libs=$(PKG_CONFIG_PATH=$pc pkg-config --libs g4rt)
for need in libhwy nlohmann_json; do
  grep -q "^$need" <<< "$requires" || { echo "FAIL g4rt.pc does not require $need: $requires"; exit 1; }
done
grep -q -- -pthread <<< "$libs" || { echo "FAIL g4rt.pc's Libs lack -pthread: $libs"; exit 1; }
echo "ok   g4rt.pc requires $(echo $requires), links $libs"
