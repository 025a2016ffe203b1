#!/usr/bin/env python3
"""Two g4 serve replicas behind nginx (Debian's nginx-light; docs/serve.md's configuration, all on 127.0.0.1): a run
of non-streamed chat requests from four clients, one replica killed (SIGKILL) half-way: every request still succeeds
with the same greedy answer, because a replica keeps no state a balancer must know about and nginx retries the other.
Without nginx it skips (exit 77), except under CI=true.

usage: test_serve_replicas.py G4_EXE TESTS_DATA_DIR"""
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

G4, DATA = sys.argv[1], sys.argv[2]
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def replica(log):
    proc = subprocess.Popen([G4, "serve", "-m", os.path.join(DATA, "demo"), "--port", "0", "--no-warmup", "-t", "1",
                             "--parallel", "2"], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline:
        with open(log.name) as f:
            m = re.search(r"ready .*", f.read())
            if m:
                break
        if proc.poll() is not None:
            raise AssertionError("a replica exited early:\n" + open(log.name).read())
        time.sleep(0.2)
    with open(log.name) as f:
        port = int(re.search(r"listening on http://127\.0\.0\.1:(\d+)", f.read()).group(1))
    return proc, port


def post(port, body):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    conn.request("POST", "/v1/chat/completions", body=json.dumps(body), headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    payload = r.read()
    conn.close()
    return r.status, payload


def main():
    if NGINX is None:
        print("nginx is not installed (Debian: nginx-light)")
        sys.exit(1 if os.environ.get("CI") == "true" else 77)
    tmp = tempfile.mkdtemp()
    logs = [open(os.path.join(tmp, "replica%d.log" % i), "w+") for i in range(2)]
    replicas = [replica(log) for log in logs]
    port = free_port()
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write("""daemon off;
pid %(tmp)s/nginx.pid;
error_log %(tmp)s/error.log;
events {}
http {
  access_log off;
  client_body_temp_path %(tmp)s/body; proxy_temp_path %(tmp)s/proxy;
  fastcgi_temp_path %(tmp)s/fcgi; uwsgi_temp_path %(tmp)s/uwsgi; scgi_temp_path %(tmp)s/scgi;
  upstream g4 {
    server 127.0.0.1:%(a)d max_fails=1 fail_timeout=30s;
    server 127.0.0.1:%(b)d max_fails=1 fail_timeout=30s;
  }
  server {
    listen 127.0.0.1:%(port)d;
    client_max_body_size 64m;
    location / {
      proxy_pass http://g4;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_read_timeout 600s;
      # A replica that dies mid-request: the request goes to the other (chat requests are safe to repeat).
      proxy_next_upstream error timeout http_502 http_503 non_idempotent;
      proxy_next_upstream_tries 2;
    }
  }
}
""" % {"tmp": tmp, "a": replicas[0][1], "b": replicas[1][1], "port": port})
    nginx = subprocess.Popen([NGINX, "-c", conf, "-p", tmp], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or nginx.poll() is not None:
                    raise AssertionError("nginx did not start: " + open(os.path.join(tmp, "error.log")).read())
                time.sleep(0.1)

        body = {"model": "demo", "messages": [{"role": "user", "content": "def add(a, b):"}], "temperature": 0, "max_tokens": 24}
        status, first = post(port, body)
        assert status == 200, "through nginx: %d %s" % (status, first[:300])
        want = json.loads(first)["choices"][0]["message"]["content"]

        results = []
        lock = threading.Lock()
        done = [0]

        def client():
            for _ in range(8):
                status, payload = post(port, body)
                with lock:
                    results.append((status, payload))
                    done[0] += 1

        threads = [threading.Thread(target=client) for _ in range(4)]
        [t.start() for t in threads]
        while done[0] < 8:  # a quarter of the run through: kill one replica (requests are in flight on both)
            time.sleep(0.05)
        replicas[0][0].kill()
        [t.join() for t in threads]
        assert len(results) == 32, "%d results" % len(results)
        for status, payload in results:
            assert status == 200, "a request failed: %d %s" % (status, payload[:300])
            got = json.loads(payload)["choices"][0]["message"]["content"]
            assert got == want, "answer %r differs from %r" % (got, want)
        print("replicas: 32 requests through nginx, one replica killed after %d: all succeeded with the same answer" % 8)
    finally:
        nginx.terminate()
        nginx.wait(timeout=30)
        for proc, _ in replicas:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)


main()
