#!/usr/bin/env bash
# llama.cpp's llama-bench and `g4 bench -m` on the same file, alternated round by round (the host's bandwidth
# drifts, so neither program gets the quieter minutes), with matching settings: a 512-token prefill, 64 decode
# steps at depth 0, 2 threads, an f16 KV cache (llama-bench's default). Prints each round, then the medians and
# g4's ratio to llama.cpp for prefill and decode. Not run in CI: it needs llama.cpp, which Debian does not package.
# usage: side_by_side.sh FILE [LLAMA_BIN_DIR]   (env: G4 = the g4 program, default build/examples/g4;
#        ROUNDS = 3, THREADS = 2, PROMPT = 512, GEN = 64)
# exit 77 (skip) where llama-bench is not found.
set -eu
file=${1:?usage: side_by_side.sh FILE [LLAMA_BIN_DIR]}
root=$(cd "$(dirname "$0")/.." && pwd)
g4=${G4:-$root/build/examples/g4}
rounds=${ROUNDS:-3} threads=${THREADS:-2} prompt=${PROMPT:-512} gen=${GEN:-64}
if [ -n "${2:-}" ]; then llama_bench=$2/llama-bench; else llama_bench=$(command -v llama-bench || true); fi
if [ -z "$llama_bench" ] || [ ! -x "$llama_bench" ]; then
  echo "llama-bench not found (give llama.cpp's build/bin folder as the second argument): nothing to compare"
  exit 77
fi
[ -x "$g4" ] || { echo "no g4 program at $g4 (set G4)"; exit 1; }
[ -f "$file" ] || { echo "no such file: $file"; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "file $file; $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); llama-bench $llama_bench; g4 $g4"
for round in $(seq "$rounds"); do
  # -r 1: one repetition per round; the rounds are the repetitions.
  "$llama_bench" -m "$file" -p "$prompt" -n "$gen" -t "$threads" -r 1 -o jsonl > "$tmp/llama-$round.jsonl"
  "$g4" bench -m "$file" -p "$prompt" -n "$gen" -t "$threads" -r 1 --context 0 --cache-type f16 > "$tmp/g4-$round.txt"
  echo "round $round done, load average $(cut -d' ' -f1-3 /proc/loadavg)"
done

python3 - "$tmp" "$rounds" "$prompt" <<'EOF'
import json, pathlib, re, statistics, sys
tmp, rounds, prompt = pathlib.Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rows = {"llama.cpp": {"prefill": [], "decode": []}, "g4": {"prefill": [], "decode": []}}
for r in range(1, rounds + 1):
    for line in (tmp / f"llama-{r}.jsonl").read_text().splitlines():
        j = json.loads(line)
        rows["llama.cpp"]["prefill" if j["n_prompt"] > 0 else "decode"].append(j["avg_ts"])
    g4 = (tmp / f"g4-{r}.txt").read_text()
    rows["g4"]["prefill"].append(float(re.search(rf"prefill +{prompt} tokens: +([\d.]+)", g4).group(1)))
    rows["g4"]["decode"].append(float(re.search(r"decode at context +0: +([\d.]+)", g4).group(1)))
    probe = re.search(r"probe beside the steps ([\d.]+) GB/s", g4).group(1)
    print(f"round {r}: llama.cpp prefill {rows['llama.cpp']['prefill'][-1]:.2f} decode {rows['llama.cpp']['decode'][-1]:.2f}; "
          f"g4 prefill {rows['g4']['prefill'][-1]:.2f} decode {rows['g4']['decode'][-1]:.2f} tokens/s (probe {probe} GB/s)")
med = {p: {k: statistics.median(v) for k, v in d.items()} for p, d in rows.items()}
for k in ("prefill", "decode"):
    print(f"median {k}: llama.cpp {med['llama.cpp'][k]:.2f}, g4 {med['g4'][k]:.2f} tokens/s, "
          f"ratio g4 / llama.cpp {med['g4'][k] / med['llama.cpp'][k]:.2f}x")
EOF
