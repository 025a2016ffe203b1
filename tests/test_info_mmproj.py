#!/usr/bin/env python3
"""`g4 info` on an mmproj GGUF alone: what it prints about the vision and audio embedders must equal the file's own
clip.* keys and tensor table, read here by a separate GGUF header parser (GGUF v3: keys, then tensor infos whose
dimensions are stored innermost first). A copy with one tensor removed must be refused, naming that tensor.
usage: test_info_mmproj.py G4_BINARY DATA_DIR"""
import pathlib
import re
import struct
import subprocess
import sys
import tempfile

from gguf_header import read_gguf_header

g4, data = sys.argv[1], pathlib.Path(sys.argv[2])
mmproj = data / "golden-gguf/multimodal-mmproj-bf16.gguf"
def info(path):
    p = subprocess.run([g4, "info", str(path)], capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


failed = []


def check(name, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else ": " + detail))
    if not ok:
        failed.append(name)


keys, tensors = read_gguf_header(mmproj)
rc, out, err = info(mmproj)
check("g4 info exits 0 on the mmproj", rc == 0, err)
sections = {"vision": "", "audio": ""}
current = None
for line in out.splitlines():
    m = re.match(r"(vision|audio) embedder", line)
    if m:
        current = m.group(1)
    elif not line.startswith(" "):
        current = None
    if current:
        sections[current] += line + "\n"


def field(section, label):
    m = re.search(r"^  " + label + r" +(.*)$", sections[section], re.M)
    return m.group(1) if m else None


def listed(section):
    return {m.group(1): (m.group(2), [int(x) for x in m.group(3).split(", ")])
            for m in re.finditer(r"^    (\S+) +(\S+) +\[([0-9, ]+)\]$", sections[section], re.M)}


check("vision embedder present", keys.get("clip.has_vision_encoder") is True and sections["vision"] != "", out)
check("vision projector", f"projector {keys['clip.vision.projector_type']}" in sections["vision"], sections["vision"])
side = keys["clip.vision.patch_size"] * 3  # the 3x3 merge of Gemma 4's pooled patches (spec: 48 px from 16 px)
check("vision patch size", field("vision", "patch") ==
      f"{side} x {side} px ({keys['clip.vision.patch_size']} px patches merged 3x3), {side * side * 3} values",
      str(field("vision", "patch")))
check("vision embedding width", field("vision", "embedding") == str(keys["clip.vision.embedding_length"]))
check("vision position table", field("vision", "positions") == f"{tensors['v.position_embd.weight'][1][1]} per axis")
check("vision output width", field("vision", "output") == str(keys["clip.vision.projection_dim"]))
vision_tensors = {n: t for n, t in tensors.items() if n.startswith("v.") or n == "mm.input_projection.weight"}
check("vision tensors: names, types and shapes", listed("vision") == vision_tensors,
      f"printed {listed('vision')}\nfile {vision_tensors}")
check("vision tensor count", field("vision", "tensors") == str(len(vision_tensors)))

check("audio embedder present", keys.get("clip.has_audio_encoder") is True and sections["audio"] != "", out)
check("audio projector", f"projector {keys['clip.audio.projector_type']}" in sections["audio"], sections["audio"])
check("audio frame", field("audio", "frame") == f"{keys['clip.audio.embedding_length']} samples")
check("audio output width", field("audio", "output") == str(keys["clip.audio.projection_dim"]))
audio_tensors = {n: t for n, t in tensors.items() if n.startswith("mm.a.")}
check("audio tensors: names, types and shapes", listed("audio") == audio_tensors,
      f"printed {listed('audio')}\nfile {audio_tensors}")
check("every tensor of the file belongs to an embedder", len(vision_tensors) + len(audio_tensors) == len(tensors))
check("tensor total", re.search(rf"^tensors +{len(tensors)}, ", out, re.M) is not None, out)

# The same file without its patch embedding: refused like `--mmproj` would refuse it, naming the tensor.
with tempfile.TemporaryDirectory() as tmp:
    b = bytearray(mmproj.read_bytes())
    name = b"v.patch_embd.weight"
    at = b.index(struct.pack("<Q", len(name)) + name)
    b[at + 8:at + 8 + len(name)] = b"v.patch_embd.wrongs"  # same length: the file stays valid GGUF
    broken = pathlib.Path(tmp) / "broken-mmproj.gguf"
    broken.write_bytes(bytes(b))
    rc, out, err = info(broken)
    check("a missing embedder tensor is an error naming it", rc != 0 and "missing tensor 'v.patch_embd.weight'" in err
          and "unexpected tensor 'v.patch_embd.wrongs'" in err, err)

print(f"{len(failed)} failed")
sys.exit(1 if failed else 0)
