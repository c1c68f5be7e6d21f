"""Where a request's time goes on the ONNX path: each step of one diagnosis in-process, then the CPU the server and
the load client spend per request under load.

The first part times each step of `OnnxPredictor.diagnose` on one thread (p50 over repeated calls on the fixture
photo `bench_space.py` sends); the second starts the Space, sends 8 clients x `--requests` requests and reads the
server's CPU time from /proc and the client's from its own process. What is left between the in-process total and
the server's share is HTTP, multipart parsing, JSON and the thread pool.

    python scripts/profile_space.py --json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_space import LEAF, load, running_space  # noqa: E402

from cropdx_hf.inference.onnx_predictor import OnnxPredictor  # noqa: E402
from cropdx_hf.inference.quality import assess  # noqa: E402
from cropdx_hf.photos import load_image  # noqa: E402
from cropdx_hf.release.registry import Releases, resolve_model  # noqa: E402
from cropdx_hf.release.timing import latency_summary, timed  # noqa: E402


def steps(model: str, runs: int) -> dict[str, float]:
    """p50 milliseconds of each step of one diagnosis, and of the whole call."""
    root = Path(__file__).resolve().parents[1]
    releases = Releases.from_settings() or Releases(root / "models", root / "exports")
    model_dir = resolve_model(model, releases)
    predictor = OnnxPredictor.for_release(model_dir, releases.export_dir(model_dir.name), threads=1)
    data = LEAF.read_bytes()
    photo = load_image(data)
    classifier, gate = predictor.preprocessing, predictor.gate_network
    pixels, gate_pixels = classifier.batch([photo]), gate.preprocessing.batch([photo])
    step_calls = {
        "decode": lambda: load_image(data),
        "quality_check": lambda: assess(photo),
        "classifier_preprocessing": lambda: classifier.batch([photo]),
        "gate_preprocessing": lambda: gate.preprocessing.batch([photo]),
        "classifier": lambda: predictor.session.run(None, {predictor.input_name: pixels}),
        "gate_network": lambda: gate.session.run(None, {"pixel_values": gate_pixels}),
        "whole_diagnosis": lambda: predictor.diagnose(load_image(data)),
    }
    return {name: latency_summary(timed(call, runs))["p50_ms"] for name, call in step_calls.items()}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def under_load(model: str, clients: int, requests: int) -> dict[str, float]:
    """CPU milliseconds per request of the server and of the load client, and the throughput."""
    with running_space("onnx", model) as (base, server):
        start: dict[str, float] = {}

        def clocks_start() -> None:
            start.update(server=cpu_seconds(server.pid), client=time.process_time())

        runs, wall = load(f"{base}/predict", LEAF.read_bytes(), clients, requests, on_start=clocks_start)
        done = sum(len(run) for run in runs)
        return {"requests": done, "throughput_rps": round(done / wall, 1),
                "server_cpu_ms_per_request": round(1000 * (cpu_seconds(server.pid) - start["server"]) / done, 1),
                "client_cpu_ms_per_request": round(1000 * (time.process_time() - start["client"]) / done, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--runs", type=int, default=200, help="timed calls per step")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=40, help="per client")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = {"command": "python scripts/profile_space.py " + " ".join(sys.argv[1:]), "cpu_count": os.cpu_count(),
              "in_process_p50_ms": steps(args.model, args.runs),
              "under_load": under_load(args.model, args.clients, args.requests)}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for name, ms in report["in_process_p50_ms"].items():
        print(f"{name:>26}: {ms:.2f} ms")
    print(", ".join(f"{k} {v}" for k, v in report["under_load"].items()))


if __name__ == "__main__":
    main()
