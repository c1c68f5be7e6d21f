"""Benchmarks of diagnosis at scale (docs/scale.md), on this machine, with the scale extra installed:

- batch: `cropdx diagnose` on 1 and 2 Ray workers against a plain loop over `OnnxPredictor.diagnose`, photos/s and
  the peak memory of the job's whole process tree (proportional set size, so shared pages count once), sampled
  through the run; its rows against PyTorch's `Predictor.diagnose` on a seeded sample; a run killed half way and
  re-run; bad files in the input.
- serve: the Ray Serve app (`serve run` on configs/serve.yaml) at 1 and 2 replicas under 8 and 32 concurrent
  clients, every 10th request a bad file or an unknown model: requests/s, p95 latency, server errors.

    python scripts/bench_scale.py --data ../shared/data/plantvillage --json    # writes reports/scale/bench_scale.json
    python scripts/bench_scale.py --data ../shared/data/plantvillage --only batch --limit 2000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import psutil
import pyarrow.parquet as pq
import yaml

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from bench_space import free_port, wait_for_health  # noqa: E402
from soak_space import requests_plan, send  # noqa: E402

from cropdx_hf.modeling.config import ONNX_FP32  # noqa: E402
from cropdx_hf.photos import ImageError, folder_photos  # noqa: E402
from cropdx_hf.release.registry import DEFAULT_RELEASE, Releases  # noqa: E402
from cropdx_hf.scale.results import PARTS_DIR, RESULTS_FILE  # noqa: E402
from cropdx_hf.scale.summary import SUMMARY_FILE  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RELEASES = Releases(ROOT / "models", ROOT / "exports")
ENV = {**os.environ, "CROPDX_MODELS": str(RELEASES.models_dir), "CROPDX_EXPORTS": str(RELEASES.exports_dir),
       "HF_HUB_OFFLINE": "1", "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0"}


def tree_pss_mb(pid: int) -> float:
    """Proportional set size of a process and all its descendants (Ray's local processes are the job's children),
    from /proc/PID/smaps_rollup: psutil's memory_full_info parses the full smaps, which costs the job a share of a
    core at this sampling rate."""
    total_kb = 0
    with contextlib.suppress(psutil.NoSuchProcess):
        root = psutil.Process(pid)
        for process in [root, *root.children(recursive=True)]:
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{process.pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Pss:"):
                        total_kb += int(line.split()[1])
                        break
    return round(total_kb / 1024, 1)


def rows_written(out: Path) -> int:
    return sum(pq.ParquetFile(f).metadata.num_rows for f in (out / PARTS_DIR).glob("part-*.parquet"))


def run_diagnose(source: Path, out: Path, workers: int, kill_at: int | None = None, extra: tuple[str, ...] = ()
                 ) -> dict:
    """`cropdx diagnose` as a user runs it, with its process tree's memory sampled every second (and killed with
    SIGKILL once `kill_at` rows are written)."""
    cmd = [str(ROOT / ".venv" / "bin" / "cropdx"), "diagnose", "--data", str(source), "--out", str(out),
           "--workers", str(workers), *extra]
    start, samples = time.perf_counter(), []
    job = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                           start_new_session=True)
    while job.poll() is None:
        samples.append((round(time.perf_counter() - start, 1), tree_pss_mb(job.pid)))
        if kill_at is not None and (out / PARTS_DIR).is_dir() and rows_written(out) >= kill_at:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
            return {"killed_after_rows": rows_written(out), "seconds": samples[-1][0]}
        time.sleep(1.0)
    output = job.stdout.read()
    if job.returncode:
        raise RuntimeError(f"{' '.join(cmd)} exited {job.returncode}: {output[-2000:]}")
    summary = json.loads((out / SUMMARY_FILE).read_text())
    peak = max(samples, key=lambda s: s[1]) if samples else (0, float("nan"))
    quarters = [samples[int(len(samples) * q) - 1][1] for q in (0.25, 0.5, 0.75, 1.0)] if samples else []
    return {"command": " ".join(cmd[1:]), "exit_code": job.returncode, "rows": summary["photos"],
            "by_status": summary["by_status"], "run": summary["run"], "errors": summary["errors"],
            "wall_seconds": round(time.perf_counter() - start, 1), "peak_pss_mb": peak[1],
            "pss_mb_at_quarters_of_the_run": quarters, "printed": output.strip().splitlines()[0] if output else ""}


def plain_loop(photos: list[Path]) -> dict:
    """The baseline: one process, one ONNX session on one thread (the file the job reads by default), one photo at
    a time."""
    from cropdx_hf.inference.onnx_predictor import OnnxPredictor

    predictor = OnnxPredictor.for_release(RELEASES.path(DEFAULT_RELEASE), RELEASES.export_dir(DEFAULT_RELEASE),
                                          threads=1, file_name=ONNX_FP32)
    start = time.perf_counter()
    for photo in photos:
        with contextlib.suppress(ImageError):
            predictor.diagnose(photo)
    seconds = time.perf_counter() - start
    return {"photos": len(photos), "seconds": round(seconds, 1), "photos_per_second": round(len(photos) / seconds, 2)}


def agreement_with_pytorch(results: Path, work: Path, sample: int, seed: int = 0) -> dict:
    """The job's rows against PyTorch's `Predictor.diagnose` on a seeded sample: per-photo status and top class,
    the summary's counts over the sample both ways; then the same sample diagnosed from the export's INT8 file."""
    from cropdx_hf.inference.predictor import Predictor

    chosen = random.Random(seed).sample(pq.read_table(results).to_pylist(), sample)
    predictor = Predictor.from_folder(RELEASES.path(DEFAULT_RELEASE))
    torch = [predictor.diagnose(row["path"]) for row in chosen]
    csv = work / "sample.csv"
    csv.write_text("path\n" + "\n".join(str(Path(row["path"]).resolve()) for row in chosen) + "\n")
    run_diagnose(csv, work / "sample_int8", 1, extra=("--int8",))
    int8 = {row["path"]: row for row in pq.read_table(work / "sample_int8" / RESULTS_FILE).to_pylist()}
    return {"photos": sample, "fp32_file": _agreement(chosen, torch),
            "int8_file": _agreement([int8[str(Path(row["path"]).resolve())] for row in chosen], torch)}


def _agreement(rows: list[dict], torch: list) -> dict:
    job = [(row["status"], row["classes"][0] if row["status"] == "diagnosed" else None) for row in rows]
    reference = [(d.status, d.predictions[0].class_name if d.status == "diagnosed" else None) for d in torch]
    return {"same_status_and_class": sum(a == b for a, b in zip(job, reference, strict=True)),
            "same_top3_order": sum(row["classes"] == [c.class_name for c in d.predictions]
                                   for row, d in zip(rows, torch, strict=True)),
            "by_status_job": dict(Counter(k[0] for k in job)),
            "by_status_pytorch": dict(Counter(k[0] for k in reference)),
            "summary_agrees": Counter(job) == Counter(reference)}


def bench_batch(data: Path, limit: int | None, work: Path, results: dict, save: Callable[[], None]) -> None:
    """Fills `results` step by step, saving after each (a late failure keeps what was measured)."""
    photos = folder_photos(data)[:limit] if limit else folder_photos(data)
    source = data
    if limit:  # a CSV of the first photos stands for the folder
        source = work / "photos.csv"
        source.write_text("path\n" + "\n".join(str(p.resolve()) for p in photos) + "\n")
    steps = {"plain_loop": lambda: plain_loop(photos), "workers_1": lambda: run_diagnose(source, work / "one", 1),
             "workers_2": lambda: run_diagnose(source, work / "two", 2),
             "killed_half_way": lambda: run_diagnose(source, work / "resumed", 2, kill_at=len(photos) // 2),
             "resumed": lambda: run_diagnose(source, work / "resumed", 2),
             "agreement_with_pytorch": lambda: agreement_with_pytorch(work / "two" / RESULTS_FILE, work,
                                                                      min(200, len(photos))),
             "bad_files": lambda: bench_bad_files(work)}
    results["photos"] = len(photos)
    for name, step in steps.items():
        results[name] = step()
        if name == "workers_2":
            results["speedup_2_vs_1_workers"] = round(
                results["workers_2"]["run"]["photos_per_second"] / results["workers_1"]["run"]["photos_per_second"], 2)
            results["speedup_1_worker_vs_plain_loop"] = round(
                results["workers_1"]["run"]["photos_per_second"] / results["plain_loop"]["photos_per_second"], 2)
        if name == "resumed":
            paths = pq.read_table(work / "resumed" / RESULTS_FILE).column("path").to_pylist()
            results["resumed_rows"], results["resumed_rows_unique"] = len(paths), len(set(paths))
        save()


def bench_bad_files(work: Path) -> dict:
    """A corrupt JPEG and a non-image among good photos: rows with errors, exit code 0, the summary names them."""
    folder = work / "with_bad_files"
    folder.mkdir()
    for photo in folder_photos(ROOT / "tests" / "fixtures" / "leaves")[:8]:
        (folder / photo.name).write_bytes(photo.read_bytes())
    (folder / "corrupt.jpg").write_bytes(photo.read_bytes()[:2000])
    (folder / "notes.png").write_text("a note, not a photo")
    result = run_diagnose(folder, work / "bad_out", 1)
    return {key: result[key] for key in ("exit_code", "rows", "by_status", "errors")}


@contextlib.contextmanager
def serve_app(replicas: int) -> Iterator[str]:
    """`serve run` on configs/serve.yaml with `replicas` and a free port; yields the base URL."""
    config = yaml.safe_load((ROOT / "configs" / "serve.yaml").read_text())
    port = free_port()
    config["http_options"] = {"host": "127.0.0.1", "port": port}
    application = config["applications"][0]
    application["args"].update(models_dir=str(RELEASES.models_dir), exports_dir=str(RELEASES.exports_dir),
                               models=DEFAULT_RELEASE)
    application["deployments"][0]["num_replicas"] = replicas
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as file:
        yaml.safe_dump(config, file)
        file.flush()
        server = subprocess.Popen([str(ROOT / ".venv" / "bin" / "serve"), "run", file.name], env=ENV, cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        try:
            if not wait_for_health(base, server, tries=600, pause=0.5):
                raise RuntimeError("serve run exited, or its app was not up within 5 minutes")
            yield base
        finally:
            os.killpg(server.pid, signal.SIGINT)  # `serve run` shuts the app and its local Ray down on Ctrl-C
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)


def load(base: str, clients: int, requests: int) -> dict:
    """`requests` POSTs from `clients` threads, every 10th a bad input; latency over the whole plan."""
    def timed(item):
        start = time.perf_counter()
        result = send(http, base, item)
        return {**result, "seconds": time.perf_counter() - start}

    with httpx.Client(timeout=120) as http, ThreadPoolExecutor(clients) as pool:
        list(pool.map(timed, requests_plan(2 * clients, 10)))  # warm-up: every replica and client thread
        start = time.perf_counter()
        results = list(pool.map(timed, requests_plan(requests, 10)))
        wall = time.perf_counter() - start
    latency = np.array([r["seconds"] for r in results]) * 1000
    bad = [r for r in results if r["bad"]]
    return {"clients": clients, "requests": len(results), "requests_per_second": round(len(results) / wall, 1),
            "p50_ms": round(float(np.percentile(latency, 50)), 1),
            "p95_ms": round(float(np.percentile(latency, 95)), 1),
            "server_errors": sum(r["status"] >= 500 for r in results), "bad_inputs": len(bad),
            "bad_inputs_answered_4xx": sum(400 <= r["status"] < 500 and r["clear"] for r in bad),
            "good_answered_200": sum(r["status"] == 200 and r["clear"] for r in results if not r["bad"])}


def bench_serve(requests: int, results: dict, save: Callable[[], None]) -> None:
    for replicas in (1, 2):
        with serve_app(replicas) as base:
            results[f"replicas_{replicas}"] = [load(base, clients, requests) for clients in (8, 32)]
        save()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a folder of photos, e.g. ../shared/data/plantvillage")
    parser.add_argument("--limit", type=int, help="only the first N photos (default: all)")
    parser.add_argument("--only", choices=["batch", "serve"], help="one half of the benchmark")
    parser.add_argument("--requests", type=int, default=400, help="requests per Serve load level")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "scale", help="where bench_scale.json goes")
    args = parser.parse_args()
    command = "python scripts/bench_scale.py " + " ".join(sys.argv[1:])
    path = args.out / "bench_scale.json"
    # --only measures one half again and keeps the other half's figures, each section naming its command
    report = json.loads(path.read_text()) if args.only and path.is_file() else {}
    report.update(cpu_count=os.cpu_count(), model=DEFAULT_RELEASE)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        def save() -> None:  # the report is committed: the temporary folder and the checkout's place are no one's
            text = json.dumps(report, indent=2).replace(work, "$WORK").replace(str(ROOT), ".")
            path.write_text(text)

        if args.only != "serve":
            report["batch"] = {"command": command}
            bench_batch(args.data, args.limit, Path(work), report["batch"], save)
        if args.only != "batch":
            report["serve"] = {"command": command}
            bench_serve(args.requests, report["serve"], save)
    print(path.read_text() if args.json else f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
