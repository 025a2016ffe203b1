#!/usr/bin/env python3
"""g4 serve end to end: starts the server on the demo model (and on the multimodal reference checkpoint) on free
loopback ports and checks, as an OpenAI client would: greedy chat equals `g4 run`, a streamed answer joins to the
non-streamed one, usage counts, cache reuse on a follow-up turn, completions, concurrent clients, an aborted stream,
every error path (400 naming the field, 401, 404, 413, 503), and that the server stays healthy after each; images,
audio and video on the multimodal checkpoint give what g4 run gives.

usage: test_serve.py G4_EXE TESTS_DATA_DIR"""
import base64
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

G4, DATA = sys.argv[1], sys.argv[2]
DEMO = os.path.join(DATA, "demo")
GGUF = os.path.join(DATA, "golden-gguf")
checks = 0


def check(cond, what):
    global checks
    checks += 1
    if not cond:
        raise AssertionError(what)


class Server:
    def __init__(self, *args):
        self.log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
        self.proc = subprocess.Popen([G4, "serve", "--port", "0", "--no-warmup", "-t", "2", *args],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        self.port = None
        while time.time() < deadline:
            check(self.proc.poll() is None, "g4 serve exited early:\n" + self.text())
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", self.text())
            if m:
                self.port = int(m.group(1))
                status, _ = self.request("GET", "/health")
                if status == 200:
                    return
                check(status == 503, "health while loading: %d" % status)
            time.sleep(0.2)
        raise AssertionError("g4 serve did not become healthy:\n" + self.text())

    def text(self):
        with open(self.log.name) as f:
            return f.read()

    def request(self, method, path, body=None, headers=None, raw=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        payload = r.read()
        self.last_headers = dict(r.getheaders())
        conn.close()
        try:
            return r.status, json.loads(payload) if payload else None
        except ValueError:
            return r.status, payload

    def stream(self, path, body):
        """The SSE events of a streamed request (the payloads after 'data: '), checking the framing."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
        conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        if r.status != 200:
            check(False, "stream status %d: %s" % (r.status, r.read()[:300]))
        check(r.getheader("Content-Type", "").startswith("text/event-stream"), "stream content type")
        raw = r.read().decode()
        conn.close()
        check(raw.endswith("data: [DONE]\n\n"), "stream ends with [DONE]: %r" % raw[-80:])
        events = []
        for block in raw.split("\n\n")[:-1]:
            check(block.startswith("data: "), "SSE block %r" % block[:80])
            payload = block[len("data: "):]
            events.append(payload if payload == "[DONE]" else json.loads(payload))
        return events

    def healthy(self, what):
        status, body = self.request("GET", "/health")
        check(status == 200 and body == {"status": "ok"}, "server unhealthy after %s: %s %s" % (what, status, body))

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=60)
        check(rc == 0, "g4 serve exit status %d after SIGTERM:\n%s" % (rc, self.text()[-2000:]))
        os.unlink(self.log.name)


def g4_run(*args):
    out = subprocess.run([G4, "run", "--no-warmup", "-t", "2", *args], capture_output=True, timeout=300)
    check(out.returncode == 0, "g4 run failed: " + out.stderr.decode(errors="replace"))
    return out.stdout.decode(errors="replace")  # as the server's JSON writes invalid UTF-8: U+FFFD


def chat(messages, **kw):
    body = {"model": "demo", "messages": messages, "temperature": 0, "max_tokens": 16}
    body.update(kw)
    return body


def content(resp):
    return resp["choices"][0]["message"]["content"]


def expect_error(srv, status, body=None, param=None, raw=None, path="/v1/chat/completions", headers=None):
    got, resp = srv.request("POST", path, body, raw=raw, headers=headers)
    check(got == status, "expected %d, got %d: %s" % (status, got, resp))
    check(isinstance(resp, dict) and set(resp["error"]) >= {"message", "type", "param"}, "error object: %s" % resp)
    if param is not None:
        check(resp["error"]["param"] == param, "error param %r, expected %r: %s" % (resp["error"]["param"], param, resp))
    srv.healthy("a %d for %s" % (status, (raw or json.dumps(body))[:60]))
    return resp


def main():
    srv = Server("-m", DEMO, "--parallel", "2", "-c", "1024", "--max-body-mb", "1", "--queue", "8")
    try:
        status, models = srv.request("GET", "/v1/models")
        check(status == 200 and models["object"] == "list" and models["data"][0]["id"] == "demo", "models: %s" % models)

        # Greedy chat equals g4 run on the same conversation.
        user = "def add(a, b):"
        status, r1 = srv.request("POST", "/v1/chat/completions", chat([{"role": "user", "content": user}]))
        check(status == 200, "chat: %d %s" % (status, r1))
        check(r1["object"] == "chat.completion" and r1["id"].startswith("chatcmpl-"), "chat object")
        check(r1["choices"][0]["message"]["role"] == "assistant", "role")
        check(r1["choices"][0]["finish_reason"] in ("stop", "length"), "finish_reason")
        expected = g4_run("-m", DEMO, "-p", user, "-n", "16", "--temp", "0")
        check(expected == content(r1) + "\n", "chat %r differs from g4 run %r" % (content(r1), expected))
        u1 = r1["usage"]
        check(u1["prompt_tokens"] > 5 and 1 <= u1["completion_tokens"] <= 16, "usage %s" % u1)
        check(u1["total_tokens"] == u1["prompt_tokens"] + u1["completion_tokens"], "total_tokens")
        check(r1["choices"][0]["finish_reason"] != "length" or u1["completion_tokens"] == 16, "length means max_tokens")

        # The same request again: the same answer, the prompt from the cache (all but its last token).
        status, r2 = srv.request("POST", "/v1/chat/completions", chat([{"role": "user", "content": user}]))
        check(content(r2) == content(r1), "repeat differs")
        check(r2["usage"]["prompt_tokens_details"]["cached_tokens"] == u1["prompt_tokens"] - 1, "repeat cached %s" % r2["usage"])

        # Streamed: the deltas join to the same content; usage chunk when asked for.
        events = srv.stream("/v1/chat/completions", chat([{"role": "user", "content": user}], stream=True,
                                                         stream_options={"include_usage": True}))
        check(events[-1] == "[DONE]", "DONE last")
        chunks = events[:-1]
        check(all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks), "chunk ids")
        check(chunks[0]["choices"][0]["delta"].get("role") == "assistant", "first delta has the role")
        joined = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
        check(joined == content(r1), "streamed %r != %r" % (joined, content(r1)))
        finals = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
        check(len(finals) == 1 and finals[0]["choices"][0]["finish_reason"] == r1["choices"][0]["finish_reason"], "final chunk")
        usage = chunks[-1]
        check(usage["choices"] == [] and usage["usage"]["completion_tokens"] == u1["completion_tokens"] and
              usage["usage"]["prompt_tokens"] == u1["prompt_tokens"], "usage chunk %s" % usage)
        plain = srv.stream("/v1/chat/completions", chat([{"role": "user", "content": user}], stream=True))
        check(all("usage" not in c for c in plain[:-1]), "no usage without include_usage")

        # A follow-up turn reuses the cache of the first.
        turn2 = [{"role": "user", "content": user}, {"role": "assistant", "content": content(r1)},
                 {"role": "user", "content": "Returns the"}]
        status, r3 = srv.request("POST", "/v1/chat/completions", chat(turn2))
        check(status == 200, "turn 2")
        check(r3["usage"]["prompt_tokens"] > u1["prompt_tokens"], "turn 2 longer")
        check(r3["usage"]["prompt_tokens_details"]["cached_tokens"] > 0, "turn 2 cached %s" % r3["usage"])
        expected3 = subprocess.run([G4, "run", "--no-warmup", "-t", "2", "-m", DEMO, "-i", "-n", "16", "--temp", "0"],
                                   input=user + "\nReturns the\n", capture_output=True, text=True, timeout=300).stdout
        check(expected3 == content(r1) + "\n" + content(r3) + "\n", "turn 2 differs from g4 run -i: %r" % expected3)

        # Completions: raw text, as g4 run --raw.
        status, c1 = srv.request("POST", "/v1/completions", {"prompt": "Returns the", "max_tokens": 8, "temperature": 0})
        check(status == 200 and c1["object"] == "text_completion", "completion %s" % c1)
        check(g4_run("-m", DEMO, "--raw", "-p", "Returns the", "-n", "8", "--temp", "0") == "Returns the" + c1["choices"][0]["text"] + "\n",
              "completion differs from g4 run --raw")
        check(c1["usage"]["completion_tokens"] == 8 and c1["choices"][0]["finish_reason"] == "length", "completion usage")
        events = srv.stream("/v1/completions", {"prompt": "Returns the", "max_tokens": 8, "temperature": 0, "stream": True})
        check("".join(e["choices"][0]["text"] for e in events[:-1]) == c1["choices"][0]["text"], "streamed completion")

        # Concurrent clients: each answer equals its solo answer.
        prompts = ["class Stack:", "import os", "def main():", "for i in range(10):"]
        solo = {}
        for p in prompts:
            solo[p] = content(srv.request("POST", "/v1/chat/completions", chat([{"role": "user", "content": p}]))[1])
        results = {}

        def client(p):
            results[p] = srv.request("POST", "/v1/chat/completions", chat([{"role": "user", "content": p}]))

        threads = [threading.Thread(target=client, args=(p,)) for p in prompts]
        [t.start() for t in threads]
        [t.join() for t in threads]
        for p in prompts:
            check(results[p][0] == 200 and content(results[p][1]) == solo[p], "concurrent %r" % p)

        # An aborted stream: the server cancels it and goes on.
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
        conn.request("POST", "/v1/chat/completions", body=json.dumps(chat([{"role": "user", "content": "import sys"}],
                                                                           max_tokens=900, stream=True)),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        check(resp.status == 200 and resp.read(6) == b"data: ", "aborted stream started")
        conn.sock.close()
        conn.close()
        t0 = time.time()
        status, again = srv.request("POST", "/v1/chat/completions", chat([{"role": "user", "content": user}]))
        check(status == 200 and content(again) == content(r1), "after an aborted stream")
        srv.healthy("an aborted stream")

        # A whole (non-streamed) answer whose client leaves: the server notices within its 100 ms poll, cancels the
        # request (logged as 499) and frees the slot long before the 900 tokens would be done.
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
        conn.request("POST", "/v1/chat/completions", body=json.dumps(chat([{"role": "user", "content": "import sys"}],
                                                                           max_tokens=900)),
                     headers={"Content-Type": "application/json"})
        time.sleep(0.3)
        conn.sock.close()
        conn.close()
        deadline = time.time() + 10
        while time.time() < deadline and not re.search(r"POST /v1/chat/completions 499 ", srv.text()):
            time.sleep(0.05)
        check(re.search(r"POST /v1/chat/completions 499 ", srv.text()), "a whole answer's client left: no 499 line in\n" + srv.text()[-1500:])
        for _ in range(40):  # the slot is free at the scheduler's next step
            status, metrics = srv.request("GET", "/metrics")
            if re.search(rb"^g4_slots_busy 0$", metrics, re.M):
                break
            time.sleep(0.05)
        check(status == 200 and re.search(rb"^g4_slots_busy 0$", metrics, re.M), "a slot busy after a whole answer's client left")

        # Every malformed request: a 400 naming the field, and the server stays up.
        good = chat([{"role": "user", "content": "hi"}])
        expect_error(srv, 400, raw=b"{not json")
        expect_error(srv, 400, raw=b"[1, 2]")
        expect_error(srv, 400, raw=b"")
        expect_error(srv, 400, raw=b'{"messages": ' + b"[" * 100000 + b"]" * 100000 + b"}")
        expect_error(srv, 400, raw=b'{"messages": "\xff\xfe"}')
        expect_error(srv, 400, dict(good, n=2), "n")
        expect_error(srv, 400, dict(good, temperature="hot"), "temperature")
        expect_error(srv, 400, dict(good, max_tokens=-1), "max_tokens")
        expect_error(srv, 400, dict(good, logprobs="yes"), "logprobs")
        expect_error(srv, 400, dict(good, frequency_penalty=3.0), "frequency_penalty")
        expect_error(srv, 400, dict(good, stop=[1]), "stop")
        expect_error(srv, 400, dict(good, stream_options={"include_usage": True}), "stream_options")
        expect_error(srv, 400, {"model": "demo"}, "messages")
        expect_error(srv, 400, dict(good, messages=[{"role": "wizard", "content": "x"}]), "messages[0].role")
        expect_error(srv, 400, dict(good, messages=[{"role": "user", "content": 5}]), "messages[0].content")
        expect_error(srv, 400, dict(good, messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]), "messages[0].content[0]")  # no vision
        expect_error(srv, 400, dict(good, tools=[{"type": "function", "function": {"name": "f"}}]), "tools")  # no template
        expect_error(srv, 400, dict(good, tool_choice="required"), "tool_choice")
        expect_error(srv, 400, dict(good, response_format={"type": "json_schema"}), "response_format.json_schema")
        long_prompt = " ".join(["word"] * 3000)
        e = expect_error(srv, 400, dict(good, messages=[{"role": "user", "content": long_prompt}]), "messages")
        check(e["error"]["code"] == "context_length_exceeded", "context error code")
        e = expect_error(srv, 400, dict(good, messages=[{"role": "user", "content": long_prompt}], stream=True), "messages")
        expect_error(srv, 400, {"prompt": 5}, "prompt", path="/v1/completions")
        expect_error(srv, 413, raw=b'{"messages": "' + b"x" * (2 << 20) + b'"}')
        status, _ = srv.request("GET", "/nope")
        check(status == 404, "unknown route: %d" % status)
        srv.healthy("the error paths")
        status, again = srv.request("POST", "/v1/chat/completions", chat([{"role": "user", "content": user}]))
        check(status == 200 and content(again) == content(r1), "a good request after the bad ones")
    finally:
        srv.stop()

    # A full queue: 503 with Retry-After; every request either answers or is refused, none is lost.
    srv = Server("-m", DEMO, "--queue", "1", "-c", "1024")
    try:
        results = []

        def busy(i):
            results.append(srv.request("POST", "/v1/chat/completions", chat([{"role": "user", "content": "x%d" % i}],
                                                                            max_tokens=300)))

        threads = [threading.Thread(target=busy, args=(i,)) for i in range(8)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        codes = sorted(s for s, _ in results)
        check(len(results) == 8 and set(codes) <= {200, 503} and codes.count(200) >= 2 and codes.count(503) >= 1,
              "queue: %s" % codes)
        for s, body in results:
            if s == 503:
                check(body["error"]["type"] == "server_error", "503 body %s" % body)
        srv.healthy("a full queue")
    finally:
        srv.stop()

    # --api-key: Bearer or 401 (health stays open).
    srv = Server("-m", DEMO, "--api-key", "sekret", "-c", "512")
    try:
        expect_error(srv, 401, chat([{"role": "user", "content": "hi"}]))
        expect_error(srv, 401, chat([{"role": "user", "content": "hi"}]), headers={"Authorization": "Bearer wrong"})
        status, r = srv.request("POST", "/v1/chat/completions", chat([{"role": "user", "content": "hi"}], max_tokens=2),
                                headers={"Authorization": "Bearer sekret"})
        check(status == 200 and r["usage"]["completion_tokens"] >= 1, "authorized request")
        status, _ = srv.request("GET", "/v1/models")
        check(status == 401, "models needs the key")
    finally:
        srv.stop()

    # Images and audio on the multimodal checkpoint: the same tokens as g4 run --image / --audio.
    mm = os.path.join(GGUF, "multimodal-bf16.gguf")
    mmproj = os.path.join(GGUF, "multimodal-mmproj-bf16.gguf")
    media_dir = os.path.join(DATA, "media")
    bad = subprocess.run([G4, "serve", "-m", mm, "--port", "0", "--allowed-local-media-path", os.path.join(media_dir, "none")],
                         capture_output=True, text=True, timeout=60)
    check(bad.returncode != 0 and "--allowed-local-media-path" in bad.stderr, "a missing media folder: %r" % bad.stderr)
    srv = Server("-m", mm, "--mmproj", mmproj, "-c", "4096",  # room for a clip's 32 frames of 70 soft tokens
                 "--allowed-local-media-path", media_dir)
    try:
        with open(os.path.join(DATA, "media", "sample.png"), "rb") as f:
            png = base64.b64encode(f.read()).decode()
        with open(os.path.join(DATA, "media", "sample.wav"), "rb") as f:
            wav = base64.b64encode(f.read()).decode()
        q = "What is this?"
        image_msg = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64," + png}},
                                                  {"type": "text", "text": q}]}]
        status, r = srv.request("POST", "/v1/chat/completions", chat(image_msg, max_tokens=8))
        check(status == 200, "image chat: %s" % r)
        check(r["usage"]["prompt_tokens"] > 200, "image soft tokens in the prompt: %s" % r["usage"])
        expected = g4_run("-m", mm, "--mmproj", mmproj, "--image", os.path.join(DATA, "media", "sample.png"), "-p", q,
                          "-n", "8", "--temp", "0")
        check(expected == content(r) + "\n", "image chat %r differs from g4 run %r" % (content(r), expected))
        # The same picture as a file:// URL under --allowed-local-media-path; a file outside it is refused.
        file_msg = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "file://" + os.path.realpath(
            os.path.join(media_dir, "sample.png"))}}, {"type": "text", "text": q}]}]
        status, r = srv.request("POST", "/v1/chat/completions", chat(file_msg, max_tokens=8))
        check(status == 200 and expected == content(r) + "\n", "file:// image chat: %s" % r)
        expect_error(srv, 400, chat([{"role": "user", "content": [{"type": "image_url", "image_url": {
            "url": "file://" + os.path.realpath(os.path.join(media_dir, "..", "demo", "config.json"))}}]}]),
            "messages[0].content[0].image_url.url")
        audio_msg = [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": wav, "format": "wav"}},
                                                  {"type": "text", "text": q}]}]
        status, r = srv.request("POST", "/v1/chat/completions", chat(audio_msg, max_tokens=8))
        check(status == 200, "audio chat: %s" % r)
        expected = g4_run("-m", mm, "--mmproj", mmproj, "--audio", os.path.join(DATA, "media", "sample.wav"), "-p", q,
                          "-n", "8", "--temp", "0")
        check(expected == content(r) + "\n", "audio chat %r differs from g4 run %r" % (content(r), expected))
        expect_error(srv, 400, chat([{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + png[:len(png) // 2]}}]}]),
            "messages[0].content[0].image_url.url")
        expect_error(srv, 400, chat([{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": base64.b64encode(b"RIFFxxxxWAVE").decode(), "format": "wav"}}]}]),
            "messages[0].content[0].input_audio.data")
        video_checks(srv, mm, mmproj, q)
    finally:
        srv.stop()
    print("serve: %d checks passed" % checks)


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args], check=True, timeout=120)


def video_checks(srv, mm, mmproj, q):
    """Video (issue 33) on the multimodal checkpoint: vLLM's video_url part with a clip written by the ffmpeg program
    gives the same greedy tokens as g4 run --video (frames and sound); bad clips are 400s naming the part, after
    which the server is healthy with every slot free."""
    def video_msg(data, mime="video/mp4"):
        return [{"role": "user", "content": [{"type": "video_url", "video_url": {"url": "data:%s;base64,%s" % (
            mime, base64.b64encode(data).decode())}}, {"type": "text", "text": q}]}]

    status, r = srv.request("POST", "/v1/chat/completions", chat(video_msg(b"\0" * 64), max_tokens=2))
    if status == 400 and "built without video support (FFmpeg)" in r["error"]["message"]:
        check(r["error"]["param"] == "messages[0].content[0]", "no-FFmpeg refusal names the part: %s" % r)
        print("serve: this g4 has no FFmpeg; video checked only for its refusal")
        return
    if shutil.which("ffmpeg") is None:
        print("serve: video NOT checked end to end: no ffmpeg program to write the clip (Debian ffmpeg)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        # H.264 with B-frames and AAC sound in MP4; FFV1 with PCM sound in Matroska (sent labelled video/mp4: the
        # container is sniffed from the bytes); 61 s of 16x16 (over the 60 s limit).
        mp4, mkv, long_clip = (os.path.join(tmp, n) for n in ("clip.mp4", "clip.mkv", "long.mkv"))
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=100x70:rate=25:duration=2.2", "-f", "lavfi", "-i",
               "sine=frequency=440:sample_rate=16000:duration=2.2", "-c:v", "libx264", "-bf", "2", "-g", "10",
               "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", mp4)
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=98x66:rate=30:duration=1.5", "-f", "lavfi", "-i",
               "sine=frequency=1000:sample_rate=44100:duration=1.5", "-c:v", "ffv1", "-c:a", "pcm_s16le", mkv)
        ffmpeg("-f", "lavfi", "-i", "color=size=16x16:rate=2:duration=61", "-c:v", "ffv1", long_clip)
        clips = {}
        for path in (mp4, mkv, long_clip):
            with open(path, "rb") as f:
                clips[path] = f.read()
        # Sampled as transformers does: 32 frames by default; mm_processor_kwargs as --video-frames / --video-fps.
        for path, sampling, flags, frames in ((mp4, None, [], 32), (mkv, {"num_frames": 4}, ["--video-frames", "4"], 4),
                                              (mp4, {"fps": 1}, ["--video-fps", "1"], 2)):
            body = chat(video_msg(clips[path]), max_tokens=8)
            if sampling:
                body["mm_processor_kwargs"] = sampling
            status, r = srv.request("POST", "/v1/chat/completions", body)
            check(status == 200, "video chat %s %s: %s" % (os.path.basename(path), sampling, r))
            check(frames * 70 + 55 < r["usage"]["prompt_tokens"] < frames * 80 + 150,  # 2.2 s of sound: 55 tokens
                  "%d frames of 70 soft tokens (and timestamps) and the sound in the prompt: %s" % (frames, r["usage"]))
            expected = g4_run("-m", mm, "--mmproj", mmproj, "--video", path, *flags, "-p", q, "-n", "8", "--temp", "0",
                              "-c", "4096")
            check(expected == content(r) + "\n", "video chat %s %s: %r differs from g4 run --video %r" % (
                os.path.basename(path), sampling, content(r), expected))
        url = "messages[0].content[0].video_url.url"
        e = expect_error(srv, 400, chat(video_msg(clips[mp4][:len(clips[mp4]) // 2])), url)  # its index at the end: cut off
        e = expect_error(srv, 400, chat(video_msg(bytes(range(256)) * 64)), url)
        e = expect_error(srv, 400, chat([{"role": "user", "content": [
            {"type": "video_url", "video_url": {"url": "https://example.com/clip.mp4"}}]}]), url)
        check("never downloads" in e["error"]["message"], "remote video refusal: %s" % e)
        e = expect_error(srv, 400, chat(video_msg(clips[long_clip])), url)
        check("over the 60 s limit" in e["error"]["message"], "over-long clip: %s" % e)
        body = chat(video_msg(clips[mp4]))
        body["mm_processor_kwargs"] = {"num_frames": 55}  # every frame, 55 of ~78 tokens: over 4096
        e = expect_error(srv, 400, body, "messages[0].content[0]")
        check(e["error"]["code"] == "context_length_exceeded", "video over the context: %s" % e)
        e = expect_error(srv, 400, dict(body, stream=True), "messages[0].content[0]")
        status, metrics = srv.request("GET", "/metrics")
        check(status == 200 and re.search(rb"^g4_slots_busy 0$", metrics, re.M) and re.search(rb"^g4_requests_queued 0$", metrics, re.M),
              "every slot free after the bad clips: %s" % metrics)


if __name__ == "__main__":
    main()
