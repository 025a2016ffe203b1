#!/usr/bin/env python3
"""`g4 template` end to end: every case of chat-template/cases.json rendered through the program must equal jinja2's
rendering byte for byte (with --template, and with -m on a Hugging Face folder that carries the template either
way and on a GGUF file that carries it as tokenizer.chat_template); `g4 template parse` must turn the template's own tool-call markup back into the call.
usage: test_template_cli.py G4_BINARY DATA_DIR"""
import json
import pathlib
import struct
import subprocess
import sys
import tempfile

g4, data = sys.argv[1], pathlib.Path(sys.argv[2])
templates = {"gemma-4-31B-it": data / "chat-template/gemma4-official.jinja",
             "gemma-4-31B-it-interleaved": data / "chat-template/gemma4-official-interleaved.jinja"}
cases = json.loads((data / "chat-template/cases.json").read_text())["cases"]
failed = []


def run(args, stdin=b""):
    p = subprocess.run([g4, "template", *args], input=stdin, capture_output=True, timeout=60)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def check(name, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + name)
    if not ok:
        failed.append(name)
        print(detail[:2000])


with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    models = {}
    for key, path in templates.items():  # a folder with chat_template.jinja, one with tokenizer_config.json, a GGUF
        jinja_dir, config_dir, gguf = tmp / (key + "-jinja"), tmp / (key + "-config"), tmp / (key + ".gguf")
        jinja_dir.mkdir()
        config_dir.mkdir()
        (jinja_dir / "chat_template.jinja").write_bytes(path.read_bytes())
        (config_dir / "tokenizer_config.json").write_text(json.dumps({"chat_template": path.read_text()}))

        def gguf_string(b):
            return struct.pack("<Q", len(b)) + b
        # GGUF v3 with no tensors and one key (type 8: string).
        gguf.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + gguf_string(b"tokenizer.chat_template") +
                         struct.pack("<I", 8) + gguf_string(path.read_bytes()))
        models[key] = [jinja_dir, config_dir, gguf]
    for i, case in enumerate(cases):
        request = {k: v for k, v in case.items() if k not in ("name", "template", "rendered")}
        req = tmp / f"request{i}.json"
        req.write_text(json.dumps(request))
        want = case["rendered"].encode()
        label = f"{case['name']} [{case['template']}]"
        sources = [["--template", str(templates[case["template"]])]] + [["-m", str(m)] for m in models[case["template"]]]
        for source in sources:
            rc, out, err = run(["render", *source, "--request", str(req), "--as-is"])
            check(f"render {label} {source[0]} {pathlib.Path(source[1]).name}", rc == 0 and out == want, f"exit {rc}\n{err}\n{out!r}\n{want!r}")
        # Without --as-is the official template needs no change to the request, so the prompt is the same.
        if case["template"] == "gemma-4-31B-it":
            rc, out, err = run(["render", "--template", str(templates[case["template"]]), "--request", str(req)])
            check(f"render adapted {label}", rc == 0 and out == want, f"exit {rc}\n{err}\n{out!r}")

    # The template's tool-call markup parses back into the request's call.
    case = next(c for c in cases if c["name"] == "tool_call_and_response" and c["template"] == "gemma-4-31B-it")
    rendered = case["rendered"]
    call = rendered[rendered.index("<|tool_call>"):rendered.index("<tool_call|>") + len("<tool_call|>")]
    rc, out, err = run(["parse"], ("<|channel>thought\nweather<channel|>On it." + call).encode())
    msg = json.loads(out) if rc == 0 else {}
    want_args = case["messages"][1]["tool_calls"][0]["function"]["arguments"]
    check("parse a call", rc == 0 and msg["content"] == "On it." and msg["reasoning_content"] == "weather"
          and msg["tool_calls"][0]["function"]["name"] == "get_weather"
          and json.loads(msg["tool_calls"][0]["function"]["arguments"]) == want_args, f"{rc} {err} {out!r}")
    req = tmp / "tools.json"
    req.write_text(json.dumps({"tools": case["tools"]}))
    rc, out, err = run(["parse", "--tools", str(req)], b"<|tool_call>call:format_disk{}<tool_call|>")
    check("parse an undeclared call as text", rc == 0 and json.loads(out)["tool_calls"] == []
          and "not declared" in err, f"{rc} {err} {out!r}")
    # Errors a user meets.
    rc, out, err = run(["render", "--template", str(templates["gemma-4-31B-it"]), "--request", str(tmp / "nope.json")])
    check("missing request file", rc == 1 and "nope.json" in err, err)
    (tmp / "bad.jinja").write_text("line\n{% if %}")
    rc, out, err = run(["render", "--template", str(tmp / "bad.jinja"), "--request", str(tmp / "request0.json")])
    check("template error names line and column", rc == 1 and "line 2, column" in err, err)
    rc, out, err = run(["render", "-m", str(tmp), "--request", str(tmp / "request0.json")])
    check("model without a template", rc == 1 and "no chat template" in err, err)

print(f"{len(failed)} failed")
sys.exit(1 if failed else 0)
