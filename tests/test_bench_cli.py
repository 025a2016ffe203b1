#!/usr/bin/env python3
"""`g4 bench -m FILE` on llama-quantize's Q4_K_M file of the demo (Q4_K and Q6_K layers, a Q6_K head): the bytes a
decode token reads must equal the file's own tensor sizes, read here from its header by a separate parser (every
layer matrix + the tied token_embd head), by type; the KV bytes at each context must equal what the header's
attention shape says a token reads (full layers every key, sliding layers at most the window, f32 K and V); every
row and the decode-step breakdown must be there, and the breakdown's parts must add up to within 10% of the
measured step. On the demo's Hugging Face folder the bytes per token must equal its safetensors headers' sizes. Options
for synthetic weights are refused with -m. Speed itself is not checked (bench/ holds goals).
usage: test_bench_cli.py G4_BINARY DATA_DIR"""
import json
import pathlib
import re
import struct
import subprocess
import sys

from gguf_header import read_gguf_header, tensor_bytes

g4, data = sys.argv[1], pathlib.Path(sys.argv[2])
gguf = data / "ggml-quants/demo-q4_k_m-llama-quantize.gguf"
MATRICES = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
CONTEXTS = (0, 300)  # 300 passes the demo's sliding window of 256
failed = 0


def check(name, ok, detail=""):
    global failed
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else ": " + detail))
    failed += 0 if ok else 1


keys, tensors = read_gguf_header(gguf)
layer_bytes = {}
for name, (t, shape) in tensors.items():
    m = re.fullmatch(r"blk\.\d+\.(\w+)\.weight", name)
    if m and m.group(1) in MATRICES:
        layer_bytes[t] = layer_bytes.get(t, 0) + tensor_bytes(t, shape)
head_type, head_shape = tensors["token_embd.weight"]
head_bytes = tensor_bytes(head_type, head_shape)
weights = sum(layer_bytes.values()) + head_bytes


def kv_bytes(context):
    a = "gemma4.attention."
    total = 0
    for kv_heads, sliding in zip(keys[a + "head_count_kv"], keys[a + "sliding_window_pattern"]):
        dim = keys[a + "key_length_swa"] if sliding else keys[a + "key_length"]
        positions = min(context + 1, keys[a + "sliding_window"]) if sliding else context + 1
        total += positions * kv_heads * dim * 2 * 4  # K and V, f32
    return total


p = subprocess.run([g4, "bench", "-m", str(gguf), "-t", "2", "-p", "16", "-n", "3", "-r", "2",
                    "--context", ",".join(map(str, CONTEXTS))], capture_output=True, text=True, timeout=300)
out = p.stdout
check("g4 bench -m exits 0", p.returncode == 0, p.stderr[-2000:])

m = re.search(r"weights read per decode token: (\d+) bytes \(layer matrices:([^;]*); output head (\w+) (\d+)\)", out)
check("weights line", m is not None, out[:2000])
if m:
    printed = {t: int(b) for t, b in re.findall(r"(\w+) (\d+)", m.group(2))}
    check("weight bytes per token = the file's matrices + token_embd", int(m.group(1)) == weights, f"{m.group(1)} != {weights}")
    check("layer bytes by type = the file's", printed == layer_bytes, f"{printed} != {layer_bytes}")
    check("output head = token_embd", (m.group(3), int(m.group(4))) == (head_type, head_bytes), m.group(0))

check("prefill row with its probe",
      re.search(r"prefill +16 tokens: +[\d.]+ tokens/s \(median of 2; probe beside [\d.]+ GB/s\)", out) is not None, out[:3000])

for c in CONTEXTS:
    m = re.search(rf"decode at context +{c}: +([\d.]+) tokens/s \(median of 2 x 3 steps\) = +([\d.]+)% of the probe beside "
                  rf"the steps ([\d.]+) GB/s \((\d+) bytes per token, KV (\d+)\)", out)
    check(f"decode row at context {c}", m is not None, out[:3000])
    if not m:
        continue
    check(f"KV bytes at context {c} from the header's attention shape", int(m.group(5)) == kv_bytes(c),
          f"{m.group(5)} != {kv_bytes(c)}")
    check(f"bytes per token at context {c} = weights + KV", int(m.group(4)) == weights + kv_bytes(c), m.group(0))
    tps, pct, probe = float(m.group(1)), float(m.group(2)), float(m.group(3))
    check(f"% of the probe at context {c} = tokens/s x bytes / probe",
          tps > 0 and probe > 0 and abs(pct - 100 * tps * int(m.group(4)) / (probe * 1e9)) <= 0.1 + 0.01 * pct, m.group(0))

    block = out.split(f"breakdown of a decode step at context {c} (mean of 6):\n", 1)
    check(f"breakdown at context {c}", len(block) == 2, out[:3000])
    if len(block) != 2:
        continue
    lines = block[1].split("\n")
    parts = {}
    for line in lines:
        pm = re.match(r"  (\S.*?) +([\d.]+) ms +[\d.]+%", line)
        if not pm:
            break
        parts[pm.group(1)] = float(pm.group(2))
    want = {"matmul Q4_K", "matmul Q6_K", "attention", "output head Q6_K", "softcap + sampling", "rest"}
    check(f"breakdown parts at context {c}", set(parts) == want, f"{sorted(parts)}")
    sm = re.search(r"  sum +([\d.]+) ms of the measured step ([\d.]+) ms", block[1])
    check(f"breakdown sum line at context {c}", sm is not None, block[1][:1000])
    if sm:
        total, step = float(sm.group(1)), float(sm.group(2))
        check(f"printed sum = the parts at context {c}", abs(total - sum(parts.values())) <= 0.001 * len(parts) + 1e-3,
              f"{total} vs {sum(parts.values())}")
        check(f"parts within 10% of the measured step at context {c}", step > 0 and abs(total - step) <= 0.1 * step,
              f"{total} ms vs {step} ms")

check("peak memory line", re.search(r"peak resident memory [\d.]+ GiB", out) is not None, out[-500:])

# The Hugging Face folder: the same matrices under their HF names, read from each safetensors file's JSON header.
hf_bytes = 0
for f in sorted((data / "demo").glob("model-*.safetensors")):
    with open(f, "rb") as fh:
        header = json.loads(fh.read(struct.unpack("<Q", fh.read(8))[0]))
    for name, t in header.items():
        if re.fullmatch(r"model\.(embed_tokens|layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj))\.weight", name):
            hf_bytes += t["data_offsets"][1] - t["data_offsets"][0]
p = subprocess.run([g4, "bench", "-m", str(data / "demo"), "-t", "2", "-p", "4", "-n", "1", "-r", "1", "--context", "0"],
                   capture_output=True, text=True, timeout=120)
m = re.search(r"weights read per decode token: (\d+) bytes", p.stdout)
check("HF folder: bytes per token = its safetensors' matrices + embed_tokens",
      p.returncode == 0 and m is not None and int(m.group(1)) == hf_bytes, f"exit {p.returncode}, {m and m.group(0)} vs {hf_bytes}")

for flag, value in (("--type", "Q8_0"), ("--layers", "2")):
    p = subprocess.run([g4, "bench", "-m", str(gguf), flag, value], capture_output=True, text=True, timeout=60)
    check(f"{flag} with -m refused naming it", p.returncode == 1 and flag in p.stderr, f"exit {p.returncode}: {p.stderr}")
p = subprocess.run([g4, "bench", "-m", str(data / "no-such.gguf")], capture_output=True, text=True, timeout=60)
check("a missing file is refused naming it", p.returncode == 1 and "no-such.gguf" in p.stderr, f"exit {p.returncode}: {p.stderr}")

print(f"{failed} failed")
sys.exit(1 if failed else 0)
