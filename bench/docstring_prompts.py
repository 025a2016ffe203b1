#!/usr/bin/env python3
"""Writes bench/data/docstring_prompts.json: 40 docstrings of Python libraries for the demo drafter's acceptance
benchmark (bench_speculative --acceptance). The demo model was trained on docstrings of Python libraries and its
drafter's acceptance was measured by transformers on 40 held-out docstring prompts we do not have; these are the
same kind of text, taken from the Python standard library (the picks depend only on the Python version; the
committed file came from Debian's Python 3): every public function or class of the listed modules with an ASCII
docstring of at least 300 characters, sorted by qualified name, then 40 evenly spaced picks. Only the first ~200 characters are kept: the
benchmark uses the first 24 tokens of each as the prompt.
    python3 bench/docstring_prompts.py > bench/data/docstring_prompts.json
"""
import importlib
import inspect
import json

MODULES = ["argparse", "asyncio.tasks", "base64", "bisect", "calendar", "collections", "csv", "datetime", "decimal",
           "difflib", "email.message", "fractions", "functools", "gzip", "heapq", "http.client", "inspect",
           "ipaddress", "itertools", "json", "logging", "os", "pathlib", "pickle", "random", "re", "shutil",
           "socket", "sqlite3", "statistics", "string", "subprocess", "tarfile", "textwrap", "threading",
           "urllib.parse", "uuid", "zipfile"]


def main():
    docs = {}
    for name in MODULES:
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        for attr in sorted(dir(mod)):
            if attr.startswith("_"):
                continue
            obj = getattr(mod, attr, None)
            if not (inspect.isfunction(obj) or inspect.isclass(obj) or inspect.isbuiltin(obj) or callable(obj)):
                continue
            doc = inspect.getdoc(obj)
            if doc and len(doc) >= 300 and doc.isascii():
                docs.setdefault(doc, "%s.%s" % (name, attr))
    picked = sorted(docs.items(), key=lambda kv: kv[1])
    step = len(picked) / 40
    out = [{"source": picked[int(i * step)][1], "text": picked[int(i * step)][0][:200]} for i in range(40)]
    print(json.dumps({"what": __doc__.strip().splitlines()[0], "prompts": out}, indent=1))


if __name__ == "__main__":
    main()
