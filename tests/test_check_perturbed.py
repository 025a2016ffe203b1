#!/usr/bin/env python3
"""`g4 check` must fail when one reference value moves past its bound, and --tolerance must move every bound.

usage: test_check_perturbed.py G4 DATA_DIR

Each case is copied with one value of one reference tensor moved by `shift` x max|reference|; the check must report
that tensor as FAIL and exit 1. The unperturbed copy must pass, so a failure is the perturbation's doing.
"""
import json, os, shutil, struct, subprocess, sys, tempfile

g4, data = sys.argv[1], sys.argv[2]
failures = 0


def check(case_dir, *extra):
    if os.path.basename(case_dir).startswith("mtp"):  # a copy no longer sits beside its target case
        extra = ("--target", os.path.join(data, "golden", "mtp-target"), *extra)
    p = subprocess.run([g4, "check", case_dir, *extra], capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


def expect(name, ok):
    global failures
    print(("ok   " if ok else "FAIL ") + name)
    failures += not ok


def perturbed_copy(case, tensor, shift, tmp):
    dst = os.path.join(tmp, os.path.basename(case) + "-" + tensor)
    shutil.copytree(case, dst, symlinks=True)
    path = os.path.join(dst, "golden.safetensors")
    with open(path, "r+b") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        info = header[tensor]
        assert info["dtype"] == "F32", tensor
        begin, end = info["data_offsets"]
        f.seek(8 + n + begin)
        values = struct.unpack("<%df" % ((end - begin) // 4), f.read(end - begin))
        scale = max(abs(v) for v in values)
        f.seek(8 + n + begin)
        f.write(struct.pack("<f", values[0] + shift * scale))
    return dst


golden = os.path.join(data, "golden")
with tempfile.TemporaryDirectory() as tmp:
    # (case, tensor, shift, the line g4 check prints for it)
    for case, tensor, shift, line in [
        ("text", "logits", 1e-2, "logits "),
        ("multimodal", "image_embeddings", 1e-3, "image_embeddings"),  # default bound 1e-4
        ("mtp", "drafter_logits", 1e-3, "drafter_logits"),  # default bound 1e-4
        ("mtp", "shared_kv.full_attention.k", 1e-2, "shared_kv.full_attention.k"),
    ]:
        src = os.path.join(golden, case)
        rc, out = check(perturbed_copy(src, tensor, shift, tmp))
        failed_line = any(l.strip().startswith(line.strip()) and "FAIL" in l for l in out.splitlines())
        expect(f"{case}: {tensor} moved by {shift:g} x max fails", rc == 1 and failed_line)
        # A tolerance above the shift accepts it: --tolerance loosens every bound, not only the coarse ones.
        rc, out = check(os.path.join(tmp, case + "-" + tensor), "--tolerance", str(shift * 20))
        expect(f"{case}: --tolerance {shift * 20:g} accepts it", rc == 0)
    rc, _ = check(os.path.join(golden, "text"))
    expect("text: the unperturbed case passes", rc == 0)
    rc, out = check(os.path.join(golden, "text"), "--tolerance", "1e-9")
    expect("text: --tolerance 1e-9 tightens the bound until it fails", rc == 1)

print(f"{failures} failure(s)")
sys.exit(1 if failures else 0)
