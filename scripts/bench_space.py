"""Load test of the Space's REST API on 127.0.0.1: N concurrent clients, a bounded number of requests each.

Starts `space/app.py` as a subprocess, waits for /health, then each client posts the same leaf photo to
/predict `--requests` times (warm-up requests excluded). Reports throughput, latency p50/p95 and the server's
peak resident memory. Nothing leaves this machine.

    python scripts/bench_space.py --clients 8 --requests 20 --json
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LEAF = next(ROOT.glob("tests/fixtures/leaves/Tomato_Early_blight/*"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(pid: int, key: str = "VmHWM") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def _client(url: str, photo: bytes, requests: int, deadline: float) -> list[float]:
    times = []
    with httpx.Client(timeout=60) as http:
        for _ in range(requests):
            if time.time() > deadline:
                break
            start = time.perf_counter()
            response = http.post(url, files={"file": ("leaf.jpg", photo, "image/jpeg")})
            response.raise_for_status()
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=20, help="per client, after 2 warm-up requests")
    parser.add_argument("--model", default=None)
    parser.add_argument("--max-seconds", type=float, default=300)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    cmd = [sys.executable, str(ROOT / "space" / "app.py"), "--port", str(port)]
    server = subprocess.Popen(cmd + (["--model", args.model] if args.model else []), env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        model = httpx.get(f"{base}/health").json()["default"]
        photo = LEAF.read_bytes()
        _client(f"{base}/predict", photo, 2, time.time() + 60)  # warm-up
        deadline = time.time() + args.max_seconds
        start = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            runs = list(pool.map(lambda _: _client(f"{base}/predict", photo, args.requests, deadline),
                                 range(args.clients)))
        wall = time.perf_counter() - start
        times = np.array([t for run in runs for t in run])
        result = {"model": model, "clients": args.clients, "requests": int(len(times)),
                  "throughput_rps": round(len(times) / wall, 2),
                  "p50_ms": round(1000 * float(np.percentile(times, 50)), 1),
                  "p95_ms": round(1000 * float(np.percentile(times, 95)), 1),
                  "server_peak_rss_mb": _rss_mb(server.pid), "cpu_threads": os.cpu_count()}
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(json.dumps(result, indent=2) if args.json else
          f"{result['clients']} clients, {result['requests']} requests: {result['throughput_rps']} req/s, "
          f"p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms, server peak RSS {result['server_peak_rss_mb']} MB")


if __name__ == "__main__":
    main()
