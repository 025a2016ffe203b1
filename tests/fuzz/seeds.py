#!/usr/bin/env python3
"""Fills the fuzz corpora, OUT/<harness>/, with seeds built from the project's own test files (tests/data).

Usage: seeds.py OUT. Nothing here is committed: the seeds are copies or small derivatives of tests/data.
Multi-file inputs join their files with the separator of tests/fuzz/targets.hpp (kPartSeparator).
"""
import glob
import json
import os
import shutil
import subprocess
import tempfile
import struct
import sys

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")
SEP = b"\n--g4-fuzz-part--\n"


def read(path):
    with open(path, "rb") as f:
        return f.read()


def put(out, harness, name, data):
    os.makedirs(os.path.join(out, harness), exist_ok=True)
    with open(os.path.join(out, harness, name), "wb") as f:
        f.write(data)


def safetensors(header, blob):
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + blob


def split_safetensors(data):
    """A single safetensors file as an index json + two shards (the layout of a sharded checkpoint)."""
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    names = sorted(k for k in header if k != "__metadata__")
    shards, weight_map = [], {}
    for k, part in enumerate([names[: len(names) // 2], names[len(names) // 2:]]):
        h, blob = {}, b""
        for name in part:
            e = header[name]
            b, end = e["data_offsets"]
            h[name] = {"dtype": e["dtype"], "shape": e["shape"], "data_offsets": [len(blob), len(blob) + end - b]}
            blob += body[b:end]
            weight_map[name] = "model-0000%d-of-00002.safetensors" % (k + 1)
        shards.append(safetensors(h, blob))
    index = json.dumps({"metadata": {}, "weight_map": weight_map}).encode()
    return SEP.join([index] + shards)


def small_tokenizer(j, keep):
    """tokenizer.json cut to its first `keep` ids (and the merges among them): the same structure, fast to load."""
    model = j["model"]
    vocab = {p: i for p, i in model["vocab"].items() if i < keep}
    merges = [m for m in model["merges"] if m[0] in vocab and m[1] in vocab and m[0] + m[1] in vocab]
    j = dict(j, added_tokens=[a for a in j["added_tokens"] if a["id"] < keep])
    j["model"] = dict(model, vocab=vocab, merges=merges)
    return json.dumps(j, ensure_ascii=False).encode()


def gguf_metadata_only(data):
    """A GGUF cut to its header and metadata (tensor count 0): small, so mutations reach the metadata quickly."""
    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
    pos = 24

    def string(pos):
        (n,) = struct.unpack_from("<Q", data, pos)
        return pos + 8 + n

    def value(pos, t):
        if t in sizes:
            return pos + sizes[t]
        if t == 8:
            return string(pos)
        et, n = struct.unpack_from("<IQ", data, pos)
        pos += 12
        for _ in range(n):
            pos = value(pos, et)
        return pos

    (n_kv,) = struct.unpack_from("<Q", data, 16)
    for _ in range(n_kv):
        pos = string(pos)
        (t,) = struct.unpack_from("<I", data, pos)
        pos = value(pos + 4, t)
    return data[:8] + struct.pack("<Q", 0) + data[16:pos]


def wav(rate, channels, bits, tag, frames):
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    body = bytes((i * 37) & 0xFF for i in range(frames * block))
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(body)) + body
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def main(out):
    for p in sorted(glob.glob(os.path.join(DATA, "golden-gguf", "*.gguf"))):
        put(out, "gguf", os.path.basename(p), read(p))
        put(out, "gguf", "meta-" + os.path.basename(p), gguf_metadata_only(read(p)))
    gg = os.path.join(DATA, "golden-gguf")
    put(out, "gguf", "multimodal+mmproj", read(os.path.join(gg, "multimodal-bf16.gguf")) + SEP +
        read(os.path.join(gg, "multimodal-mmproj-bf16.gguf")))

    singles = sorted(glob.glob(os.path.join(DATA, "golden", "*", "*.safetensors")) +
                     glob.glob(os.path.join(DATA, "demo", "drafter", "*.safetensors")))
    for p in singles:
        if os.path.getsize(p) < 4 << 20:
            put(out, "safetensors", p.replace(DATA, "").strip("/").replace("/", "_"), read(p))
    for case in ("mtp", "text"):
        put(out, "safetensors", case + "-sharded", split_safetensors(read(os.path.join(DATA, "golden", case, "model.safetensors"))))

    for p in sorted(glob.glob(os.path.join(DATA, "**", "config.json"), recursive=True)):
        put(out, "hf_config", p.replace(DATA, "").strip("/").replace("/", "_"), read(p))

    tok = json.loads(read(os.path.join(DATA, "demo", "tokenizer.json")))
    put(out, "tokenizer_json", "demo-300", small_tokenizer(tok, 300))
    put(out, "tokenizer_json", "demo-1000", small_tokenizer(tok, 1000))

    texts = []
    for p in glob.glob(os.path.join(DATA, "**", "*.md"), recursive=True):
        texts.append(read(p)[:2000])
    for p in glob.glob(os.path.join(DATA, "**", "*cases.json"), recursive=True) + [os.path.join(DATA, "demo", "demo_reference.json")]:
        def strings(x):
            if isinstance(x, str):
                yield x
            elif isinstance(x, dict):
                for v in x.values():
                    yield from strings(v)
            elif isinstance(x, list):
                for v in x:
                    yield from strings(v)
        texts += [s.encode() for s in strings(json.loads(read(p))) if 0 < len(s) < 2000]
    texts += ["<bos><|turn>user\nHi <|image|> \u00e9\u4e2d\U0001f600<turn|>\n".encode(), b"\xff\xfe\x80 a\tb\r\n  c"]
    for i, t in enumerate(texts[:200]):
        put(out, "tokenizer_encode", "text%03d" % i, t)

    put(out, "wav", "sample.wav", read(os.path.join(DATA, "media", "sample.wav")))
    put(out, "wav", "8bit-stereo-8k.wav", wav(8000, 2, 8, 1, 100))
    put(out, "wav", "24bit-44k.wav", wav(44100, 1, 24, 1, 100))
    put(out, "wav", "float-48k.wav", wav(48000, 1, 32, 3, 100))
    put(out, "image", "sample.png", read(os.path.join(DATA, "media", "sample.png")))
    # Video: small clips written by the ffmpeg program (when it is there): lossless RGB with PCM sound in Matroska,
    # H.264 with B-frames in MP4, MPEG-4 part 2 with stereo AAC in AVI, and 4:2:0 FFV1 in NUT.
    if shutil.which("ffmpeg"):
        with tempfile.TemporaryDirectory() as tmp:
            src = ["-f", "lavfi", "-i", "testsrc2=size=34x22:rate=10:duration=0.8"]
            tone = ["-f", "lavfi", "-i", "sine=sample_rate=8000:duration=0.8"]
            for name, args in (("ffv1-pcm.mkv", src + tone + ["-c:v", "ffv1", "-pix_fmt", "bgr0", "-c:a", "pcm_s16le"]),
                               ("h264.mp4", src + ["-c:v", "libx264", "-bf", "2", "-g", "4"]),
                               ("mpeg4-aac.avi", src + tone + ["-c:v", "mpeg4", "-c:a", "aac", "-ac", "2"]),
                               ("ffv1-420.nut", src + ["-c:v", "ffv1", "-pix_fmt", "yuv420p"])):
                path = os.path.join(tmp, name)
                if subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y"] + args + [path]).returncode == 0:
                    put(out, "video", name, read(path))
    # stb_image reads more formats than the project's samples show; Python's own test images (when this Python has
    # them) seed the JPEG, GIF, BMP, PPM and TGA decoders.
    for p in glob.glob(os.path.join(os.path.dirname(os.__file__), "test", "imghdrdata", "python.*")):
        if os.path.splitext(p)[1] in (".jpg", ".gif", ".bmp", ".ppm", ".pgm", ".pbm", ".tga", ".png"):
            put(out, "image", os.path.basename(p), read(p))
            if p.endswith("python.jpg"):
                # The same JPEG with an EXIF orientation (6: rotate 90) in both TIFF byte orders: seeds exif.hpp.
                jpg = read(p)
                for order, name in ((b"MM", "exif-be.jpg"), (b"II", "exif-le.jpg")):
                    e = ">" if order == b"MM" else "<"
                    tiff = order + struct.pack(e + "HI", 42, 8) + struct.pack(e + "H", 1) + \
                        struct.pack(e + "HHIHH", 0x0112, 3, 1, 6, 0) + struct.pack(e + "I", 0)
                    app1 = b"Exif\0\0" + tiff
                    put(out, "image", name, jpg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpg[2:])

    # Chat records: byte 0 = options; then NUL-separated messages, each a role/kind byte and 0x01-separated text.
    chats = [b"\x05\x00user text\x00\x03answer <|channel>thought\nhmm<channel|>done",
             b"\x07\x00\x00system prompt\x00\x0aHi\x01look\x01at this\x00\x13ok",
             b"\x02\x00\x01dev\x00\x12audio\x01clip\x00\x05 model  "]
    for i, c in enumerate(chats):
        put(out, "chat_template", "chat%d" % i, c)

    # Jinja: each released Gemma 4 template with each conversation of cases.json (template, separator, request).
    spec = os.path.join(DATA, "chat-template")
    cases = json.loads(read(os.path.join(spec, "cases.json")))["cases"]
    for name in ("gemma4-official.jinja", "gemma4-official-interleaved.jinja"):
        for i, c in enumerate(cases[::2]):
            request = {k: v for k, v in c.items() if k not in ("name", "template", "rendered")}
            put(out, "jinja", "%s-%d" % (name, i), read(os.path.join(spec, name)) + SEP + json.dumps(request).encode())

    # JSON Schemas: the tool parameters declared in cases.json; grammar text: one with classes, repetition, tokens.
    schemas = {json.dumps(t["function"]["parameters"]) for c in cases for t in c.get("tools", [])
               if isinstance(t, dict) and "parameters" in t.get("function", {})}
    for i, sch in enumerate(sorted(schemas)):
        put(out, "json_schema", "schema%d" % i, sch.encode())
    put(out, "json_schema", "grammar0", b'root ::= <|tool_call> "call:" [a-z_]+ "{" ( [a-z]+ ":" ( [0-9]{1,3} | '
        b'<|"|> [^<]* <|"|> ) )? "}" <tool_call|>\nws ::= [ \\t\\n]{0,4} # comment\n')

    # The texts of /proc/meminfo, /proc/self/cgroup (v2 and v1), memory.max / memory.current and memory.stat.
    for name, text in (("meminfo", b"MemTotal:       24683784 kB\nMemFree:  512000 kB\nMemAvailable:   24106228 kB\n"),
                       ("cgroup-v2", b"0::/user.slice/user-1000.slice/session-2.scope\n"),
                       ("cgroup-v1", b"12:memory:/docker/abc\n1:cpu:/\n"),
                       ("memory.max", b"max\n"), ("memory.current", b"3221225472\n"), ("size", b"16GiB"),
                       ("memory.stat", b"anon 2147483648\nfile 1073741824\ninactive_file 536870912\n")):
        put(out, "available_memory", name, text)


if __name__ == "__main__":
    main(sys.argv[1])
