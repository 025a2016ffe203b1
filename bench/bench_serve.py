#!/usr/bin/env python3
"""Load on g4 serve: C concurrent clients x R streamed chat requests each, some cancelled at random (the client closes
the stream after a few chunks), for each --parallel value. Reports per run: requests answered / cancelled / failed
(any non-200 or broken stream is a failure), aggregate generated tokens per second (tokens of the answered requests
over the run's wall time), and the server's resident memory after the first and the last hundred requests. With
--llama-server PATH, the same load against llama-server -np P on the same file, beside it.

usage: bench_serve.py -m MODEL [--g4 build/examples/g4] [--parallel 1,4,8] [--clients 16] [--requests 8]
                      [--max-tokens 32] [--cancel 0.2] [--seed 1] [--llama-server PATH] [--json]"""
import argparse
import http.client
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time


def rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) / 1024


class Server:
    def __init__(self, argv, ready_pattern, port_pattern):
        self.log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 1800
        while time.time() < deadline:
            if self.proc.poll() is not None:
                sys.exit("server exited:\n" + open(self.log.name).read()[-3000:])
            text = open(self.log.name).read()
            m = re.search(port_pattern, text)
            if m and re.search(ready_pattern, text):
                self.port = int(m.group(1))
                return
            time.sleep(0.5)
        sys.exit("server not ready:\n" + open(self.log.name).read()[-3000:])

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def one_request(port, prompt, max_tokens, cancel_after):
    """Streams one chat answer; returns ('ok', tokens) / ('cancelled', 0) / ('failed', message)."""
    body = {"model": "m", "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens, "temperature": 0.7,
            "stream": True, "stream_options": {"include_usage": True}}
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1800)
        conn.request("POST", "/v1/chat/completions", body=json.dumps(body), headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        if r.status != 200:
            return "failed", "status %d: %s" % (r.status, r.read()[:200])
        chunks, tokens, done = 0, 0, False
        for line in r:
            line = line.decode().strip()
            if not line.startswith("data: "):
                continue
            if line == "data: [DONE]":
                done = True
                break
            event = json.loads(line[6:])
            if event.get("usage"):
                tokens = event["usage"]["completion_tokens"]
            chunks += 1
            if cancel_after is not None and chunks >= cancel_after:
                conn.sock.close()
                return "cancelled", 0
        conn.close()
        return ("ok", tokens) if done else ("failed", "stream ended without [DONE]")
    except Exception as e:  # noqa: BLE001 (a broken connection is a failed request, counted)
        return "failed", repr(e)


def run_load(port, pid, args, rng):
    prompts = ["def add(a, b):", "class Stack:", "import os", "The history of the city", "for i in range(10):",
               "Write a haiku about memory.", "Explain a hash table.", "What is 17 * 23?"]
    plan = [[(rng.choice(prompts), rng.randint(2, 6) if rng.random() < args.cancel else None) for _ in range(args.requests)]
            for _ in range(args.clients)]
    results, lock = [], threading.Lock()
    rss = {}

    def client(i):
        for prompt, cancel_after in plan[i]:
            out = one_request(port, prompt, args.max_tokens, cancel_after)
            with lock:
                results.append(out)
                n = len(results)
                if n == min(100, args.clients * args.requests // 2) and "first" not in rss:
                    rss["first"] = rss_mib(pid)

    t0 = time.time()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    wall = time.time() - t0
    rss["last"] = rss_mib(pid)
    ok = [r for r in results if r[0] == "ok"]
    failed = [r for r in results if r[0] == "failed"]
    return {"answered": len(ok), "cancelled": sum(r[0] == "cancelled" for r in results), "failed": len(failed),
            "failures": [r[1] for r in failed[:5]], "seconds": round(wall, 2),
            "tokens_per_s": round(sum(r[1] for r in ok) / wall, 3), "rss_mib_first": round(rss.get("first", 0), 1),
            "rss_mib_last": round(rss["last"], 1)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("--g4", default=os.path.join(os.path.dirname(__file__), "..", "build", "examples", "g4"))
    ap.add_argument("--parallel", default="1,4,8")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--cancel", type=float, default=0.2, help="share of requests cancelled after 2-6 chunks")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--llama-server", default="")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    runs = []
    for p in [int(x) for x in args.parallel.split(",")]:
        targets = [("g4", [args.g4, "serve", "-m", args.model, "--port", "0", "--parallel", str(p), "-c", "1024",
                           "--queue", str(args.clients * 2)] + (["-t", str(args.threads)] if args.threads else []),
                    r"g4 serve: ready", r"listening on http://127\.0\.0\.1:(\d+)")]
        if args.llama_server:
            port = 18000 + p
            targets.append(("llama.cpp", [args.llama_server, "-m", args.model, "--port", str(port), "-np", str(p),
                                          "-c", str(1024 * p)] + (["-t", str(args.threads)] if args.threads else []),
                            r"server is listening|listening on http", r"(%d)" % port))
        for name, argv, ready, port_re in targets:
            srv = Server(argv, ready, port_re)
            try:
                run = run_load(srv.port, srv.proc.pid, args, random.Random(args.seed))
            finally:
                srv.stop()
            run.update({"server": name, "parallel": p})
            runs.append(run)
            if not args.json:
                print("%-9s -np %-2d  %3d answered %3d cancelled %d failed  %7.2f tokens/s  RSS %.0f -> %.0f MiB  (%.0f s)" % (
                    name, p, run["answered"], run["cancelled"], run["failed"], run["tokens_per_s"], run["rss_mib_first"],
                    run["rss_mib_last"], run["seconds"]), flush=True)
    if args.json:
        print(json.dumps({"model": args.model, "clients": args.clients, "requests": args.requests,
                          "max_tokens": args.max_tokens, "runs": runs}))
    sys.exit(1 if any(r["failed"] for r in runs) else 0)


main()
