#!/usr/bin/env python3
"""Cost per flow (issue 16): many integrations on one node.

Applies COUNT integrations (default 2,000) of FLOWS webhook flows each (default 5, one
`transform` step per flow) to a fresh node, then reports:

* the apply time of the first and the last hundred integrations (it should stay flat);
* resident memory before and after, and per flow;
* after a restart on the same data: the time from start to `/healthz` and to `/readyz`, and
  resident memory again;
* that the last integration's flow answers (a sync webhook), so nothing was skipped.

Usage: python3 bench/many_flows.py [--count 2000] [--flows 5] [--bin target/release/flowgate]
                                  [--keep DIR]
(build first: cargo build --release -p flowgate).
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

TOKEN = "fgt_bench_token"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def request(url, method="GET", body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_for(url, deadline=120.0):
    start = time.monotonic()
    while time.monotonic() - start < deadline:
        try:
            status, _ = request(url)
            if status == 200:
                return time.monotonic() - start
        except OSError:
            pass
        time.sleep(0.005)
    raise SystemExit(f"{url} did not answer 200 within {deadline} s")


def definition(i, flows):
    lines = [f"integration: cust{i}", "flows:"]
    for f in range(flows):
        sync = f == 0
        lines += [
            f"  - flow: f{f}",
            "    trigger:",
            f"      webhook: {{ path: cust{i}/f{f}"
            + (", respond: { mode: sync, timeout: 5s }" if sync else "")
            + " }",
            "    steps:",
            "      - id: mapped",
            f"        transform: '{{ id: .body.id, customer: {i}, flow: {f}, total: (.body.qty * 12.5) }}'",
        ]
    return "\n".join(lines) + "\n"


def start(binary, port, data):
    env = dict(os.environ, FLOWGATE_BOOTSTRAP_TOKEN=TOKEN, FLOWGATE_LOG="warn")
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    return proc, t0


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--flows", type=int, default=5)
    ap.add_argument("--bin", default="target/release/flowgate")
    ap.add_argument("--keep", help="leave the data directory here (for profiling a start)")
    args = ap.parse_args()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {TOKEN}", "content-type": "application/yaml"}
    with tempfile.TemporaryDirectory() as tmp:
        data = args.keep or tmp
        proc, _ = start(args.bin, port, data)
        try:
            wait_for(f"{base}/healthz")
            idle = rss_mb(proc.pid)
            times = []
            for i in range(args.count):
                body = definition(i, args.flows).encode()
                t = time.monotonic()
                status, text = request(f"{base}/v1/integrations/cust{i}", "PUT", body, auth)
                times.append(time.monotonic() - t)
                if status not in (200, 201):
                    raise SystemExit(f"apply cust{i}: {status} {text[:300]!r}")
            loaded = rss_mb(proc.pid)
        finally:
            stop(proc)
        first = sum(times[:100]) / min(100, len(times)) * 1000
        last = sum(times[-100:]) / min(100, len(times)) * 1000
        flows = args.count * args.flows
        print(f"{args.count} integrations x {args.flows} flows = {flows} flows")
        print(f"apply: first 100 {first:.1f} ms each, last 100 {last:.1f} ms each")
        print(f"RSS: idle {idle:.1f} MB, loaded {loaded:.1f} MB = {(loaded - idle) * 1024 / flows:.1f} KB per flow")

        proc, t0 = start(args.bin, port, data)
        try:
            healthy = wait_for(f"{base}/healthz") + 0
            healthy = time.monotonic() - t0
            wait_for(f"{base}/readyz")
            ready = time.monotonic() - t0
            # Every integration compiled and routed: the last one answers.
            last_i = args.count - 1
            deadline = time.monotonic() + 120
            while True:
                status, text = request(
                    f"{base}/hooks/default/cust{last_i}/f0",
                    "POST",
                    json.dumps({"id": 1, "qty": 2}).encode(),
                    {"content-type": "application/json"},
                )
                if status == 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.01)
            served = time.monotonic() - t0
            restarted = rss_mb(proc.pid)
        finally:
            stop(proc)
        answer = json.loads(text) if status == 200 else text[:200]
        print(f"restart: healthy after {healthy:.2f} s, ready after {ready:.2f} s, "
              f"last integration answered after {served:.2f} s ({status} {answer})")
        print(f"RSS after restart: {restarted:.1f} MB")


if __name__ == "__main__":
    main()
