"""Load test of the Space's REST API on 127.0.0.1: both serving paths, side by side, in one run.

For each backend (ONNX Runtime from `cropdx export`'s files, and PyTorch) it starts `space/app.py` as a
subprocess, waits for /health, then N concurrent clients each post the same leaf photo to /predict `--requests`
times (after 2 warm-up requests each); the backends take turns for `--rounds` rounds. Reports the median throughput
and latency p50/p95 over the rounds, the server's peak resident memory and the median ONNX / PyTorch throughput
ratio of the rounds. Nothing leaves this machine.

    python scripts/bench_space.py --clients 8 --requests 20 --json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LEAF = next(ROOT.glob("tests/fixtures/leaves/Tomato_Early_blight/*"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int, key: str = "VmHWM") -> float:
    """Peak (VmHWM) or current (VmRSS) resident memory of a process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def wait_for_health(base: str, server: subprocess.Popen, tries: int, pause: float) -> bool:
    """Whether `server` answers GET /health with 200 before it exits or `tries` polls `pause` seconds apart run out."""
    for _ in range(tries):
        if server.poll() is not None:
            return False
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return True
        time.sleep(pause)
    return False


@contextlib.contextmanager
def running_space(backend: str, model: str | None = None, extra: list[str] | None = None
                  ) -> Iterator[tuple[str, subprocess.Popen]]:
    """The Space on a free port with `backend`; yields its base URL and process, stops it afterwards."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    cmd = [sys.executable, str(ROOT / "space" / "app.py"), "--port", str(port), "--backend", backend,
           *(["--model", model] if model else []), *(extra or [])]
    log = tempfile.TemporaryFile("w+")  # a pipe nobody reads would fill up and stall the server
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        if not wait_for_health(base, server, tries=900, pause=0.2):
            log.seek(0)
            raise RuntimeError(f"the Space did not start: {log.read()[-2000:]}")
        yield base, server
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


WARM_UP = 2  # requests per client before the clock starts


def load(url: str, photo: bytes, clients: int, requests: int, max_seconds: float = 300,
         on_start: Callable[[], None] = lambda: None) -> tuple[list[list[float]], float]:
    """`clients` concurrent clients post `photo` `requests` times each: their latencies, and the wall time. Each
    client opens its connection and sends its warm-up requests before the clock starts (`on_start` runs then):
    an httpx client builds an SSL context, CPU that would otherwise fall inside a run of a second or two."""
    start = threading.Barrier(clients + 1, timeout=120)

    def one_client() -> list[float]:
        times: list[float] = []
        try:
            with httpx.Client(timeout=60) as http:
                def post() -> None:
                    http.post(url, files={"file": ("leaf.jpg", photo, "image/jpeg")}).raise_for_status()

                for _ in range(WARM_UP):
                    post()
                start.wait()
                deadline = time.time() + max_seconds
                for _ in range(requests):
                    if time.time() > deadline:
                        break
                    sent = time.perf_counter()
                    post()
                    times.append(time.perf_counter() - sent)
        except BaseException:
            start.abort()  # the other clients and the clock stop waiting for this one
            raise
        return times

    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(one_client) for _ in range(clients)]
        with contextlib.suppress(threading.BrokenBarrierError):  # a client failed: raised below
            start.wait()
        began = time.perf_counter()
        on_start()
        # a failing client's own error first: the clients it stopped only raise BrokenBarrierError
        for future in sorted(futures, key=lambda f: isinstance(f.exception(), threading.BrokenBarrierError)):
            future.result()
        runs = [future.result() for future in futures]
    return runs, time.perf_counter() - began


def bench(backend: str, args: argparse.Namespace) -> dict:
    extra = ["--threads", str(args.threads)] if args.threads else []
    with running_space(backend, args.model, extra) as (base, server):
        model = httpx.get(f"{base}/health").json()["default"]
        served_by = httpx.get(f"{base}/model/version").json()["backend"]
        runs, wall = load(f"{base}/predict", LEAF.read_bytes(), args.clients, args.requests, args.max_seconds)
        times = np.array([t for run in runs for t in run])
        return {"backend": backend, "served_by": served_by, "model": model, "clients": args.clients,
                "requests": int(len(times)), "throughput_rps": round(len(times) / wall, 2),
                "p50_ms": round(1000 * float(np.percentile(times, 50)), 1),
                "p95_ms": round(1000 * float(np.percentile(times, 95)), 1),
                "server_peak_rss_mb": rss_mb(server.pid), "threads": args.threads or "default"}


def summary(runs: list[dict]) -> dict:
    """One backend over the rounds: the median of each speed figure, the highest peak RSS, every round kept."""
    medians = {key: round(float(np.median([run[key] for run in runs])), 2 if key == "throughput_rps" else 1)
               for key in ("throughput_rps", "p50_ms", "p95_ms")}
    return {**runs[0], **medians, "requests": sum(run["requests"] for run in runs),
            "server_peak_rss_mb": max(run["server_peak_rss_mb"] for run in runs),
            "rounds": [{key: run[key] for key in ("throughput_rps", "p50_ms", "p95_ms", "server_peak_rss_mb")}
                       for run in runs]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=20, help="per client, after 2 warm-up requests")
    parser.add_argument("--backend", nargs="+", choices=["onnx", "torch"], default=["onnx", "torch"])
    parser.add_argument("--model", default=None)
    parser.add_argument("--threads", type=int, default=None,
                        help="intra-op threads per model call in the server (default: the Space's own default)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per backend, taking turns; medians reported")
    parser.add_argument("--max-seconds", type=float, default=300)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    # the backends take turns, round after round: load from other work on the machine moves whole runs by 20-30 %,
    # and a ratio of neighbouring runs is steadier than one of runs minutes apart
    rounds = [{backend: bench(backend, args) for backend in args.backend} for _ in range(args.rounds)]
    results = {backend: summary([run[backend] for run in rounds]) for backend in args.backend}
    report = {"command": "python scripts/bench_space.py " + " ".join(sys.argv[1:]), "cpu_count": os.cpu_count(),
              "results": results}
    if {"onnx", "torch"} <= set(results):
        ratios = [run["onnx"]["throughput_rps"] / run["torch"]["throughput_rps"] for run in rounds]
        report["onnx_vs_torch_throughput_per_round"] = [round(r, 2) for r in ratios]
        report["onnx_vs_torch_throughput"] = round(float(np.median(ratios)), 2)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for r in results.values():
        print(f"{r['backend']:>5} ({r['served_by']}): {r['clients']} clients, {r['requests']} requests: "
              f"{r['throughput_rps']} req/s, p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms, "
              f"server peak RSS {r['server_peak_rss_mb']} MB")
    if "onnx_vs_torch_throughput" in report:
        print(f"ONNX / PyTorch throughput: {report['onnx_vs_torch_throughput']}x")


if __name__ == "__main__":
    main()
