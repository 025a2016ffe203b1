#!/usr/bin/env bash
# The g4 program driven end to end on the small checkpoints: generation (plain, drafted, interactive), images and
# audio, and the errors a user meets (bad flags, missing or broken files, over-long prompts and clips).
# usage: test_cli.sh G4_BINARY DATA_DIR
set -u
g4=$1 data=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
expect() {  # name, want_rc (0 or 1), pattern the combined output must contain, command... (stdout kept in $tmp/out)
  local name=$1 want=$2 pattern=$3; shift 3
  local out rc
  "$@" >"$tmp/out" 2>"$tmp/err"; rc=$?
  out=$(cat "$tmp/out" "$tmp/err")
  if [ "$rc" = "$want" ] && grep -qF -- "$pattern" <<<"$out"; then
    passed=$((passed + 1)); echo "ok   $name"
  else
    failed=$((failed + 1)); echo "FAIL $name (exit $rc, wanted $want and '$pattern'):"; head -c 2000 <<<"$out"; echo
  fi
}
demo=$data/demo gguf=$data/golden-gguf media=$data/media
mm=(-m "$gguf/multimodal-bf16.gguf" --mmproj "$gguf/multimodal-mmproj-bf16.gguf" --raw -n 4)

# Generation: the demo's first reference prompt continues as demo_reference.json says, with or without drafter.
expect "raw greedy continuation" 0 "Returns the  documents are broken ASY." "$g4" run -m "$demo" --raw -p "Returns the" -n 12 --temp 0
expect "drafted continuation is the same" 0 "Returns the  documents are broken ASY." \
  "$g4" run -m "$demo" --raw -p "Returns the" -n 12 --temp 0 --draft "$demo/drafter"
# An F16 KV cache (half the memory) keeps the reference continuation, also with the drafter reading it.
expect "f16 cache continuation" 0 "Returns the  documents are broken ASY." \
  "$g4" run -m "$demo" --raw -p "Returns the" -n 12 --temp 0 --cache-type f16
expect "f16 cache, drafted" 0 "Returns the  documents are broken ASY." \
  "$g4" run -m "$demo" --raw -p "Returns the" -n 12 --temp 0 --cache-type F16 --draft "$demo/drafter"
# A Q8_0 cache (ggml's blocks, read in place by attention) keeps the reference continuation, as F16 does; over 64
# tokens it leaves the F32 cache's greedy path (at 70 of 364 characters; check-demo.cache-q8_0 bounds the logits),
# and drafting on it gives exactly its own greedy tokens. Keys and values typed apart (-ctk / -ctv) run too.
expect "q8_0 cache continuation" 0 "Returns the  documents are broken ASY." \
  "$g4" run -m "$demo" --raw -p "Returns the" -n 12 --temp 0 --cache-type q8_0
expect "q8_0 cache, 64 tokens" 0 "Returns the " "$g4" run -m "$demo" --raw -p "Returns the" -n 64 --temp 0 --cache-type q8_0
q8_64=$(cat "$tmp/out")
expect "q8_0 cache, drafted" 0 "Returns the " \
  "$g4" run -m "$demo" --raw -p "Returns the" -n 64 --temp 0 --cache-type q8_0 --draft "$demo/drafter"
expect "q8_0 cache, drafted: its plain 64 tokens" 0 "" test "$(cat "$tmp/out")" = "$q8_64"
expect "q4_0 cache runs" 0 "Returns the " "$g4" run -m "$demo" --raw -p "Returns the" -n 12 --temp 0 --cache-type q4_0
expect "q8_0 keys, f16 values" 0 "Returns the  documents are broken ASY." \
  "$g4" run -m "$demo" --raw -p "Returns the" -n 12 --temp 0 -ctk q8_0 -ctv f16
# Quantized (Q4_K_M: Q4_K and Q6_K), the kernels read a row-group copy where they use one, or with --no-repack
# the file's layout: the two must continue identically (the same sums in the same order).
expect "quantize to Q4_K_M" 0 "(gemma4, Q4_K_M)" "$g4" quantize "$demo" "$tmp/q4km.gguf" --type Q4_K_M
expect "Q4_K_M continuation" 0 "Returns the " "$g4" run -m "$tmp/q4km.gguf" --raw -p "Returns the" -n 12 --temp 0
repacked=$(head -1 "$tmp/out")
expect "no-repack continuation is the same" 0 "$repacked" \
  "$g4" run -m "$tmp/q4km.gguf" --raw -p "Returns the" -n 12 --temp 0 --no-repack
# Files llama.cpp's llama-quantize wrote: its Q4_K_M holds our Q4_K_M's tensors block for block (test_ggml_quants),
# so it continues the same; its Q8_0 keeps the float32 reference's first words; its Q4_0 runs.
quants=$data/ggml-quants
expect "llama-quantize Q4_K_M continues as ours" 0 "$repacked" \
  "$g4" run -m "$quants/demo-q4_k_m-llama-quantize.gguf" --raw -p "Returns the" -n 12 --temp 0
expect "llama-quantize Q8_0 continuation" 0 "Returns the  documents are broken ASY" \
  "$g4" run -m "$quants/demo-q8_0-llama-quantize.gguf" --raw -p "Returns the" -n 8 --temp 0
expect "llama-quantize Q4_0 runs" 0 "Returns the " \
  "$g4" run -m "$quants/demo-q4_0-llama-quantize.gguf" --raw -p "Returns the" -n 8 --temp 0
# G4_KERNELS picks the kernels' SIMD target; one the program does not know is an error naming the variable.
expect "AVX2 kernels (G4_KERNELS)" 0 "Returns the " env G4_KERNELS=AVX2 "$g4" run -m "$tmp/q4km.gguf" --raw -p "Returns the" -n 4 --temp 0
expect "unknown G4_KERNELS" 1 "G4_KERNELS" env G4_KERNELS=NO_SUCH_TARGET "$g4" info "$demo"
expect "draft statistics" 0 "drafts accepted per round" "$g4" run -m "$demo" --raw -p "Returns the" -n 12 --temp 0 --draft "$demo/drafter"
expect "speed line" 0 "tokens/s" "$g4" run -m "$demo" --raw -p "Returns the" -n 4 --temp 0.7 --seed 3
# Chat, two turns read from standard input: the first answer is the one-turn answer, each turn generates its 6
# tokens, and the second turn's prompt carries the first (30 new tokens after the 23 cached; alone it has 24).
expect "chat, one turn" 0 "prompt 23 tokens" "$g4" run -m "$demo" -p "Returns the" -n 6 --temp 0
one_turn=$(cat "$tmp/out")
expect "chat, two turns: 6 tokens each" 0 "generation 12 tokens" bash -c "printf 'Returns the\nAnd then\n' | \"$g4\" run -m \"$demo\" -i -n 6 --temp 0"
two_turns=$(cat "$tmp/out") two_turns_err=$(cat "$tmp/err")
expect "chat, two turns: the first answer is the one-turn answer" 0 "" test "${two_turns:0:${#one_turn}}" = "$one_turn"
expect "chat, two turns: the second prompt holds the first turn" 0 "prompt 53 tokens" echo "$two_turns_err"
# Chat through a template file (the demo carries none): tools declared, thinking on; without a template, tools
# are refused by name.
printf '%s' '[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]' >"$tmp/tools.json"
expect "chat with the official template and tools" 0 "generation" "$g4" run -m "$demo" --chat-template "$data/chat-template/gemma4-official.jinja" \
  --tools "$tmp/tools.json" --think -p "Weather in Paris?" -n 6 --temp 0
expect "tools need a chat template" 1 "tools need the model's chat template" "$g4" run -m "$demo" --tools "$tmp/tools.json" -p "hi" -n 2
expect "tools must be a JSON array" 1 "is not a JSON array" bash -c "echo '{}' >\"$tmp/obj.json\"; \"$g4\" run -m \"$demo\" --tools \"$tmp/obj.json\" -p hi -n 2"
expect "prompt from a file" 0 "Returns the" bash -c "printf 'Returns the' > \"$tmp/p.txt\" && \"$g4\" run -m \"$demo\" --raw -f \"$tmp/p.txt\" -n 2"
# Images and audio (random-weight reference model: only the path is checked).
expect "image and audio" 0 "2 media item(s) embedded" "$g4" run "${mm[@]}" -p "x" --image "$media/sample.png" --image-budget 70 --audio "$media/sample.wav"
expect "two images" 0 "2 media item(s) embedded" "$g4" run "${mm[@]}" -p "x" --image "$media/sample.png" --image "$media/sample.png" --image-budget 70
# A 31 s clip of silence: refused by default, cut into pieces with --audio-split.
{ printf 'RIFF\x28\x23\x0f\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x80\x3e\x00\x00\x00\x7d\x00\x00\x02\x00\x10\x00data\x00\x23\x0f\x00'
  head -c 992000 /dev/zero; } > "$tmp/long.wav"
expect "audio over 30 s" 1 "30 s" "$g4" run "${mm[@]}" -p "x" --audio "$tmp/long.wav"
expect "audio split" 0 "2 media item(s) embedded" "$g4" run "${mm[@]}" -p "x" --audio "$tmp/long.wav" --audio-split
# Video (docs/video.md): a 2.2 s clip with sound written by the ffmpeg program; without FFmpeg at build time, the
# one answer is that g4 was built without video support.
ffmpeg -hide_banner -nostdin -loglevel error -y -f lavfi -i testsrc2=size=100x70:rate=25:duration=2.2 \
  -f lavfi -i sine=sample_rate=16000:duration=2.2 -c:v ffv1 -c:a pcm_s16le "$tmp/clip.mkv"
if "$g4" run "${mm[@]}" -p x --video "$tmp/clip.mkv" --print-prompt 2>&1 | grep -q "built without video support"; then
  expect "video without FFmpeg" 1 "built without video support" "$g4" run "${mm[@]}" -p x --video "$tmp/clip.mkv"
else
  expect "video prompt" 0 "<bos>00:00 <|image>[70 x <|video|>]<image|> 00:00 <|image>[70 x <|video|>]" \
    "$g4" run "${mm[@]}" -p x --video "$tmp/clip.mkv" --print-prompt
  expect "video sound" 0 "<|audio>[55 x <|audio|>]<audio|>x" "$g4" run "${mm[@]}" -p x --video "$tmp/clip.mkv" --print-prompt
  expect "video at 1 fps" 0 "2 media item(s) embedded" "$g4" run "${mm[@]}" -p x --video "$tmp/clip.mkv" --video-fps 1
  expect "video over the context" 1 "over the context of 256" "$g4" run "${mm[@]}" -c 256 -p x --video "$tmp/clip.mkv"
  expect "video over the limit" 1 "over the 2 s limit" "$g4" run "${mm[@]}" -p x --video "$tmp/clip.mkv" --max-video-seconds 2
  expect "video frames and fps" 1 "not both" "$g4" run "${mm[@]}" -p x --video "$tmp/clip.mkv" --video-frames 4 --video-fps 1
fi
# Errors name what is wrong.
expect "unknown flag" 1 "--bogus: unknown flag" "$g4" run -m "$demo" --bogus
expect "unknown command" 2 "unknown command 'frob'" "$g4" frob
expect "missing model" 1 "no such file" "$g4" run -m "$tmp/none" -p hi
expect "missing value" 1 "needs a value" "$g4" run -m "$demo" -p
expect "over-long prompt" 1 "do not fit the context" "$g4" run -m "$demo" --raw -c 64 -p "$(printf 'word %.0s' $(seq 200))"
expect "image without vision" 1 "has no vision embedder" "$g4" run -m "$demo" -p hi --image "$media/sample.png"
echo "not an image" > "$tmp/bad.png"
expect "undecodable image" 1 "bad.png" "$g4" run "${mm[@]}" -p x --image "$tmp/bad.png"
expect "missing audio file" 1 "none.wav" "$g4" run "${mm[@]}" -p x --audio "$tmp/none.wav"
expect "bad image budget" 1 "not one of 70, 140, 280, 560, 1120" "$g4" run "${mm[@]}" -p x --image "$media/sample.png" --image-budget 100
expect "bad cache type" 1 "--cache-type: 'q5_1' is not a cache type (supported: f32, f16, q8_0, q4_0)" "$g4" run -m "$demo" -p hi --cache-type q5_1
expect "bad key cache type" 1 "--cache-type-k: 'q4_k' is not a cache type" "$g4" run -m "$demo" -p hi -ctk q4_k
expect "zero threads" 1 "--threads: 0 is outside" "$g4" run -m "$demo" -p hi -t 0
expect "10000 threads" 1 "--threads: 10000 is outside" "$g4" run -m "$demo" -p hi -t 10000
expect "not a drafter" 1 "not an MTP drafter" "$g4" run -m "$demo" -p hi --draft "$demo"
# Memory (issue 34): a context that cannot fit is refused before the model loads, naming the flag, with the
# numbers; G4_AVAILABLE_MEMORY stands for a small machine (the demo's weights are 28 MB, its 8192-token cache 16 MB).
expect "context over the model's positions" 1 "--ctx-size: 10000000 tokens requested; the model supports at most 8192" \
  "$g4" run -m "$demo" --raw -p "Returns the" -n 2 -c 10000000
expect "context over the memory" 1 "--ctx-size: 8192 tokens need" env G4_AVAILABLE_MEMORY=40M "$g4" run -m "$demo" --raw -p "Returns the" -n 2 -c 8192
expect "the largest context that fits" 1 "the largest --ctx-size that fits is 256." \
  env G4_AVAILABLE_MEMORY=40M "$g4" run -m "$demo" --raw -p "Returns the" -n 2 -c 8192
expect "--no-memory-check runs it anyway" 0 "Returns the  document" \
  env G4_AVAILABLE_MEMORY=40M "$g4" run -m "$demo" --raw -p "Returns the" -n 2 --temp 0 -c 8192 --no-memory-check
expect "serve: slots over the memory" 1 "--parallel 9 fits 8192 tokens each." env G4_AVAILABLE_MEMORY=400M "$g4" serve -m "$demo" -np 64 -c 8192 --port 0
expect "bench: context over the memory" 1 "--context: 4100 tokens need" env G4_AVAILABLE_MEMORY=40M "$g4" bench -m "$demo" -p 0 -n 3 -r 1 --context 4096
# The refused run never read the weights: its peak resident memory is below a run's by more than their 28 MB.
peak_kb() { python3 -c 'import resource, subprocess, sys
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' "$@"; }
refused=$(peak_kb env G4_AVAILABLE_MEMORY=40M "$g4" run -m "$demo" --raw -p "Returns the" -n 2 -c 8192)
ran=$(peak_kb "$g4" run -m "$demo" --raw -p "Returns the" -n 2 -c 8192)
expect "refused before reading the weights ($refused vs $ran KiB)" 0 "" test $((refused + 27000)) -lt "$ran"
# Help.
expect "help lists commands" 0 "quantize" "$g4" --help
expect "run --help" 0 "--draft FILE" "$g4" run --help
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
