"""One timing loop for the export's verification, the release comparison and the benchmark scripts."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def timed(run: Callable[[], object], runs: int, warmup: int = 10) -> np.ndarray:
    """Seconds taken by each of `runs` calls of `run`, after `warmup` calls that are not counted."""
    times = []
    for i in range(warmup + runs):
        start = time.perf_counter()
        run()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return np.asarray(times)


def latency_summary(times: np.ndarray, batch: int = 1) -> dict[str, float]:
    return {"p50_ms": round(1000 * float(np.percentile(times, 50)), 2),
            "p95_ms": round(1000 * float(np.percentile(times, 95)), 2),
            "images_per_s": round(batch / float(np.median(times)), 1)}
