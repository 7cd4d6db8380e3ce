#!/usr/bin/env python3
"""Hostile-load figures (issue 12), against a release build.

1. Big bodies: N concurrent webhooks, each a ~9.6 MB JSON array of small numbers, to a flow
   with one transform. Senders retry on 503 after Retry-After, as providers do. Reports the
   node's peak resident memory (VmHWM) and that every event ran.
2. A slow target: EVENTS webhooks to a flow whose http step calls a target that never
   answers, then another tenant's sync webhook and /healthz: their latencies.

    cargo build --release -p flowgate
    python3 bench/hostile.py                 # BIG=48 EVENTS=600 PORT=18099
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "flowgate")
PORT = int(os.environ.get("PORT", "18099"))
BIG = int(os.environ.get("BIG", "48"))
EVENTS = int(os.environ.get("EVENTS", "600"))
BASE = f"http://127.0.0.1:{PORT}"
TOKEN = "fgt_bench_hostile"
ADMIN = "fga_bench_hostile"


def call(method, path, body=None, token=TOKEN, ctype="application/json", timeout=60):
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def rss(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS", "VmHWM")):
                k, v = line.split(":")
                out[k] = int(v.split()[0]) // 1024
    return out


def start(extra=()):
    data = tempfile.mkdtemp(prefix="fg-hostile-")
    env = dict(os.environ, FLOWGATE_BOOTSTRAP_TOKEN=TOKEN, FLOWGATE_ADMIN_TOKEN=ADMIN, FLOWGATE_LOG="warn")
    p = subprocess.Popen([BIN, "serve", "--listen", f"127.0.0.1:{PORT}", "--data-dir", data, *extra], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            if call("GET", "/readyz", token=None, timeout=1)[0] == 200:
                return p, data
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit("the server did not start")


def stop(p, data):
    p.kill()
    p.wait()
    shutil.rmtree(data, ignore_errors=True)


def apply(yaml, token=TOKEN):
    slug = yaml.split("integration:")[1].split()[0]
    s, _, b = call("PUT", f"/v1/integrations/{slug}", yaml.encode(), token=token, ctype="application/yaml")
    assert s in (200, 201), b


def big_bodies():
    p, data = start(os.environ.get("SERVE_ARGS", "").split())
    apply("integration: big\nflows:\n  - flow: f\n    trigger: { webhook: { path: big } }\n"
          "    steps:\n      - { id: t, transform: 'length' }\n")
    body = json.dumps([i % 100 for i in range(3_300_000)], separators=(",", ":")).encode()  # ~9.6 MB
    ids, refusals, lock = [], [0], threading.Lock()

    def send():
        while True:
            s, h, b = call("POST", "/hooks/default/big", body, token=None, timeout=120)
            if s == 202:
                with lock:
                    ids.append(json.loads(b)["executionId"])
                return
            assert s == 503, (s, b[:200])
            with lock:
                refusals[0] += 1
            time.sleep(float(h.get("Retry-After", h.get("retry-after", "1"))))

    started = time.time()
    threads = [threading.Thread(target=send) for _ in range(BIG)]
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss(p.pid)["VmRSS"])
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Every accepted event runs to the end (listings: light, unlike an execution's full view,
    # which holds its 9.6 MB trigger).
    want = set(ids)
    while True:
        s, _, b = call("GET", "/v1/executions?flow=f&limit=500")
        items = json.loads(b)["items"]
        done_ok = {x["id"] for x in items if x["status"] == "succeeded"}
        failed = [x for x in items if x["status"] == "failed"]
        assert not failed, failed[:1]
        if want <= done_ok:
            break
        time.sleep(0.2)
    took = time.time() - started
    done.set()
    sampler.join()
    m = rss(p.pid)
    print(f"big bodies: {BIG} concurrent webhooks of {len(body) / 1e6:.1f} MB, {len(ids)} accepted "
          f"({refusals[0]} 503s retried), all succeeded in {took:.1f} s; peak RSS {max(peak[0], m['VmHWM'])} MB "
          f"(VmHWM), {m['VmRSS']} MB after")
    stop(p, data)


def slow_target():
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(4096)
    held = []
    stop_hang = threading.Event()

    def accept():
        hang.settimeout(0.2)
        while not stop_hang.is_set():
            try:
                held.append(hang.accept()[0])
            except OSError:
                pass

    threading.Thread(target=accept, daemon=True).start()
    p, data = start()
    s, _, b = call("POST", "/v1/tenants", {"id": "other"}, token=ADMIN)
    assert s == 201, b
    other = json.loads(b)["token"]
    apply("integration: bystander\nflows:\n  - flow: echo\n    trigger: { webhook: { path: echo, respond: "
          "{ mode: sync, timeout: 10s } } }\n    steps:\n      - { id: t, transform: '{ ok: true }' }\n", token=other)
    apply(f"integration: hang\nflows:\n  - flow: f\n    trigger: {{ webhook: {{ path: hang }} }}\n    steps:\n"
          f"      - {{ id: call, http: {{ method: POST, url: \"http://127.0.0.1:{hang.getsockname()[1]}/x\" }} }}\n")
    for n in range(EVENTS):
        s, _, b = call("POST", "/hooks/default/hang", {"n": n}, token=None)
        assert s == 202, b
    time.sleep(1.0)
    lat, health = [], []
    for n in range(200):
        t = time.perf_counter()
        s, _, b = call("POST", "/hooks/other/echo", {"n": n}, token=None)
        lat.append((time.perf_counter() - t) * 1000)
        assert s == 200, b
        t = time.perf_counter()
        call("GET", "/healthz", token=None)
        health.append((time.perf_counter() - t) * 1000)
    s, _, b = call("GET", "/v1/executions?status=running&limit=500")
    running = len(json.loads(b)["items"])
    lat.sort()
    health.sort()
    print(f"slow target: {EVENTS} webhooks to a target that never answers ({running} running, the rest queued); "
          f"the other tenant's sync webhook: p50 {lat[len(lat) // 2]:.1f} ms, p99 {lat[int(len(lat) * 0.99)]:.1f} ms, "
          f"max {lat[-1]:.1f} ms; /healthz p99 {health[int(len(health) * 0.99)]:.1f} ms")
    stop(p, data)
    stop_hang.set()


if __name__ == "__main__":
    if not os.path.exists(BIN):
        sys.exit("build first: cargo build --release -p flowgate")
    if os.environ.get("ONLY") != "slow":
        big_bodies()
    if os.environ.get("ONLY") != "big":
        slow_target()
