#!/usr/bin/env python3
"""`g4 perplexity` against independent truth.

- Perplexity: the demo's reference sequence (67 tokens: "Returns the" and its greedy continuation) with the logits
  Hugging Face transformers computed for it in float32 (demo/golden.safetensors). With -c 33 the first chunk is
  tokens 0..32 and llama-perplexity scores the logits of positions 16..31 against tokens 17..32; the PPL and its
  uncertainty computed here from the reference logits must match what g4 prints.
- The base file: one that this script writes from the reference logits in llama-perplexity's format must give
  KLD ~ 0 and full top-token agreement for the demo; the one g4 writes must hold the reference's log-probabilities
  (to the format's rounding) in that same layout.
- KL divergence round trip on a docstring text (-c 128: 3 chunks, 189 positions): the demo against its own base
  gives KLD ~ 0, 100% "Same top p" and its own PPL; PPL(base) is the one the stored rows give (computed here);
  llama.cpp's own Q8_0 and Q4_K_M files of the demo (tests/data/ggml-quants) give KLD > 0, Q4_K_M more than Q8_0,
  and top-token agreement far above chance (bounds below).
- Bad input: a missing text, a text too short for -c, -c over the model's context, a base file from another
  vocabulary, a base against another text, a truncated base.

usage: test_perplexity.py G4_BINARY DATA_DIR
"""
import json
import math
import os
import re
import struct
import subprocess
import sys
import tempfile

g4, data = sys.argv[1], sys.argv[2]
demo = os.path.join(data, "demo")
quants = os.path.join(data, "ggml-quants")
docstrings = os.path.join(data, "perplexity", "docstrings.txt")
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def run(*args):
    p = subprocess.run([g4, *args], capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        blob = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        b, e = t["data_offsets"]
        fmt = {"F32": "f", "I32": "i"}[t["dtype"]]
        out[name] = (t["shape"], struct.unpack("<%d%s" % ((e - b) // 4, fmt), blob[b:e]))
    return out


def log_softmax(row):
    m = max(row)
    lse = m + math.log(sum(math.exp(v - m) for v in row))
    return [v - lse for v in row]


# --- the reference sequence as text ---------------------------------------------------------------------------
ref = read_safetensors(os.path.join(demo, "golden.safetensors"))
ids = list(ref["input_ids"][1])
(n_pos, vocab), flat = ref["logits"]
logits = [flat[i * vocab:(i + 1) * vocab] for i in range(n_pos)]
tok = json.load(open(os.path.join(demo, "tokenizer.json")))
piece = {i: p for p, i in tok["model"]["vocab"].items()}
text = b""
for i in ids[1:]:  # ids[0] is <bos>, which the tokenizer adds
    p = piece[i]
    m = re.fullmatch(r"<0x([0-9A-F]{2})>", p)
    text += bytes([int(m.group(1), 16)]) if m else p.replace("\u2581", " ").encode()
tmp = tempfile.mkdtemp()
seq_txt = os.path.join(tmp, "reference.txt")
open(seq_txt, "wb").write(text)
# Precondition (the tokenizer itself is checked against Hugging Face's in test_text): the text is those 67 ids.
rc, out, _ = run("tokenize", "-m", demo, "--ids-only", "--bos", "--no-special", text.decode())
check(rc == 0 and json.loads(out) == ids, "the reference text tokenizes back to its 67 ids")

# --- perplexity of the first chunk against the reference logits -----------------------------------------------
n_ctx, first = 33, 16
nll = [-log_softmax(logits[j])[ids[j + 1]] for j in range(first, n_ctx - 1)]
mean = sum(nll) / len(nll)
ppl = math.exp(mean)
var = sum(v * v for v in nll) / len(nll) - mean * mean
unc = math.sqrt(var / (len(nll) - 1)) * ppl
rc, out, err = run("perplexity", "-m", demo, "-f", seq_txt, "-c", str(n_ctx), "--chunks", "1", "-t", "2")
m = re.search(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)", out)
check(rc == 0 and m is not None, "perplexity -c 33 --chunks 1 prints a final estimate")
if m:
    got, got_unc = float(m.group(1)), float(m.group(2))
    print(f"     reference PPL {ppl:.6f} +/- {unc:.6f}; g4 {got} +/- {got_unc}")
    check(abs(got - ppl) <= 1e-3 * ppl, "PPL equals the reference logits' (relative 1e-3)")
    check(abs(got_unc - unc) <= 1e-2 * unc, "its uncertainty equals the reference's (relative 1e-2)")
    check(f"[1]{got:.4f}," in out, "the running estimate [1] is the final one for one chunk")
rc, out2, _ = run("perplexity", "-m", demo, "-f", seq_txt, "-c", str(n_ctx), "-t", "2")
check(rc == 0 and m is not None and out2.startswith(f"[1]{float(m.group(1)):.4f},[2]"),
      "without --chunks both chunks run and the first reports the same estimate")

# --- the base file's format against the reference ---------------------------------------------------------------
nv = 2 * ((vocab + 1) // 2) + 4


def compact_row(row):  # llama-perplexity's log_softmax(n_vocab, logits, log_prob, tok), in double
    mx, mn = max(row), max(min(row), max(row) - 16)
    lse = math.log(sum(math.exp(v - mx) for v in row))
    scale = (mx - mn) / 65535
    q = [round((v - mn) / scale) if v > mn else 0 for v in row] + [0] * (nv - 4 - vocab)
    return struct.pack("<ff", scale, mn - mx - lse) + struct.pack("<%dH" % len(q), *q)


hf_base = os.path.join(tmp, "hf.kld")
with open(hf_base, "wb") as f:
    f.write(b"_logits_" + struct.pack("<Iii", n_ctx, vocab, 1) + struct.pack("<%di" % n_ctx, *ids[:n_ctx]))
    for j in range(first, n_ctx - 1):
        f.write(compact_row(logits[j]))
rc, out, err = run("perplexity", "-m", demo, "--kl-divergence-base", hf_base, "--kl-divergence", "-t", "2")
line = re.search(r"^ +1 +([0-9.]+) ± +[0-9.]+ +(-?[0-9.]+) ± +[0-9.]+ +(-?[0-9.]+) ± +[0-9.]+ +[0-9.]+ ± +[0-9.]+ % +([0-9.]+) ±", out, re.M)
check(rc == 0 and line is not None, "--kl-divergence against a base written from the reference logits")
if line:
    print("     " + line.group(0))
    check(abs(float(line.group(1)) - ppl) <= 1e-3 * ppl, "its PPL(Q) is the reference PPL")
    check(abs(float(line.group(3))) < 1e-4, "KLD from the reference ~ 0 (< 1e-4)")
    check(float(line.group(4)) == 100.0, "same top token as the reference at every position")

g4_base = os.path.join(tmp, "g4.kld")
rc, _, err = run("perplexity", "-m", demo, "-f", seq_txt, "-c", str(n_ctx), "--chunks", "1", "--kl-divergence-base", g4_base, "-t", "2")
blob = open(g4_base, "rb").read() if rc == 0 else b""
rows = n_ctx - 1 - first
check(len(blob) == 20 + 4 * n_ctx + rows * nv * 2, "g4's base file has llama-perplexity's length")
if len(blob) == 20 + 4 * n_ctx + rows * nv * 2:
    check(blob[:8] == b"_logits_" and struct.unpack("<Iii", blob[8:20]) == (n_ctx, vocab, 1), "its header: magic, n_ctx, n_vocab, n_chunk")
    check(list(struct.unpack("<%di" % n_ctx, blob[20:20 + 4 * n_ctx])) == ids[:n_ctx], "its tokens: the text's, <bos> first")
    worst = 0.0
    for r in range(rows):
        o = 20 + 4 * n_ctx + r * nv * 2
        scale, min_lp = struct.unpack("<ff", blob[o:o + 8])
        q = struct.unpack("<%dH" % vocab, blob[o + 8:o + 8 + 2 * vocab])
        want = log_softmax(logits[first + r])
        top = max(want)
        for i in range(vocab):
            if want[i] > top - 15:  # above the row's floor (16 nats below the best)
                worst = max(worst, abs(scale * q[i] + min_lp - want[i]))
    print(f"     largest stored log-prob error against the reference: {worst:.2e}")
    check(worst < 2e-3, "its rows hold the reference log-probabilities (within 2e-3 nats)")

# --- KL divergence round trip on the docstring text --------------------------------------------------------------
base = os.path.join(tmp, "demo.kld")
rc, out, err = run("perplexity", "-m", demo, "-f", docstrings, "-c", "128", "--kl-divergence-base", base, "-t", "2")
check(rc == 0 and "Final estimate: PPL = " in out, "base from the demo (bf16 weights, f32 arithmetic) on docstrings.txt, -c 128")
base_ppl = re.search(r"Final estimate: PPL = ([0-9.]+)", out)
print("     " + out.strip().splitlines()[-1] if out.strip() else "     (no output)")


def kld_stats(model):
    rc, out, err = run("perplexity", "-m", model, "--kl-divergence-base", base, "--kl-divergence", "-f", docstrings, "-t", "2")
    get = lambda label: re.search(re.escape(label) + r" *: *(-?[0-9.]+)", out)
    if rc != 0 or not get("Mean    KLD") or not get("Same top p"):
        print(out + err)
        return None
    s = {k: float(get(k).group(1)) for k in ("Mean    KLD", "Same top p", "Mean PPL(Q)", "Mean PPL(base)")}
    print(f"     {os.path.basename(model)}: " + ", ".join(f"{k.split()[-1] if k.startswith('Mean ') else k} {v}" for k, v in s.items()))
    return s


self_kl = kld_stats(demo)
check(self_kl is not None and abs(self_kl["Mean    KLD"]) < 1e-5 and self_kl["Same top p"] == 100.0,
      "the demo against its own base: KLD < 1e-5, same top token 100%")
if self_kl and base_ppl:
    check(abs(self_kl["Mean PPL(Q)"] - float(base_ppl.group(1))) <= 1e-4 * self_kl["Mean PPL(Q)"],
          "PPL(Q) of the demo against its own base is the base run's PPL")
    # PPL(base) comes from the stored rows, whose floor (16 nats below the best token) lifts very unlikely tokens:
    # on this text it is a little below the base run's own PPL, as llama-perplexity's would be.
    blob = open(base, "rb").read()
    n_ctx_b, vocab_b, n_chunk_b = struct.unpack("<Iii", blob[8:20])
    toks = struct.unpack("<%di" % (n_ctx_b * n_chunk_b), blob[20:20 + 4 * n_ctx_b * n_chunk_b])
    nv_b, first_b = 2 * ((vocab_b + 1) // 2) + 4, n_ctx_b // 2
    o, stored = 20 + 4 * n_ctx_b * n_chunk_b, []
    for c in range(n_chunk_b):
        for j in range(first_b, n_ctx_b - 1):
            scale, min_lp = struct.unpack("<ff", blob[o:o + 8])
            q = struct.unpack("<H", blob[o + 8 + 2 * toks[c * n_ctx_b + j + 1]:o + 10 + 2 * toks[c * n_ctx_b + j + 1]])[0]
            stored.append(-(scale * q + min_lp))
            o += nv_b * 2
    ppl_stored = math.exp(sum(stored) / len(stored))
    print(f"     PPL from the stored rows {ppl_stored:.6f}")
    check(abs(self_kl["Mean PPL(base)"] - ppl_stored) <= 1e-4 * ppl_stored, "PPL(base) is the stored rows' PPL")
q8 = kld_stats(os.path.join(quants, "demo-q8_0-llama-quantize.gguf"))
q4 = kld_stats(os.path.join(quants, "demo-q4_k_m-llama-quantize.gguf"))
# Measured on Zen 3 (AVX2): Q8_0 KLD 0.0041, same top 94.2%; Q4_K_M 0.20, 75.1% (-c 64: 95.7% and 69.9%). Lower than
# tests/meson.build's bounds for `g4 check` (0.92 and 0.8 over the reference sequence's 67 positions, the model's own
# confident continuation): this text is less certain for the demo (PPL ~90), so near ties are more common. A scale
# or level misread lands near chance (1 in 8192).
check(q8 is not None and q8["Mean    KLD"] > 1e-5 and q8["Same top p"] >= 90.0, "llama-quantize's Q8_0: KLD > 0, same top >= 90%")
check(q4 is not None and q8 is not None and q4["Mean    KLD"] > q8["Mean    KLD"] and q4["Same top p"] >= 65.0,
      "llama-quantize's Q4_K_M: KLD above Q8_0's, same top >= 65%")

# --- bad input -----------------------------------------------------------------------------------------------------
def refused(what, want, *args):
    rc, out, err = run("perplexity", *args)
    check(rc == 1 and want in err, f"refused: {what} ('{want}')")
    if rc != 1 or want not in err:
        print(err[-600:])


refused("missing text", "none.txt: cannot open", "-m", demo, "-f", os.path.join(tmp, "none.txt"))
refused("text shorter than 2 * c", "needs at least 1024", "-m", demo, "-f", seq_txt, "-c", "512")
refused("c over the model's context", "exceeds the model's context", "-m", demo, "-f", docstrings, "-c", "1000000")
refused("--kl-divergence without a base", "--kl-divergence: needs --kl-divergence-base", "-m", demo, "--kl-divergence")
other_vocab = os.path.join(tmp, "vocab512.kld")  # n_ctx 8, n_vocab 512, 1 chunk: 3 scored rows of 516 words
with open(other_vocab, "wb") as f:
    f.write(b"_logits_" + struct.pack("<Iii", 8, 512, 1) + struct.pack("<8i", *([2] * 8)) + bytes(3 * 516 * 2))
refused("a base from another vocabulary", "512 tokens; this model's vocabulary has 8192", "-m", demo,
        "--kl-divergence-base", other_vocab, "--kl-divergence")
refused("a base against another text", "does not tokenize to the tokens", "-m", demo, "--kl-divergence-base", base,
        "--kl-divergence", "-f", seq_txt)
truncated = os.path.join(tmp, "truncated.kld")
open(truncated, "wb").write(open(base, "rb").read()[:-2])
refused("a truncated base", "truncated", "-m", demo, "--kl-divergence-base", truncated, "--kl-divergence")
refused("not a base file", "no \"_logits_\" header", "-m", demo, "--kl-divergence-base", docstrings, "--kl-divergence")
refused("-c against the base's", "--ctx-size: 32 differs from the 128", "-m", demo, "--kl-divergence-base", base, "--kl-divergence", "-c", "32")

print(f"{len(failures)} failed" if failures else "all passed")
sys.exit(1 if failures else 0)
