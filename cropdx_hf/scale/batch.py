"""`cropdx diagnose`: every photo of a source diagnosed by a pool of Ray Data actors, written as parquet rows.

Ray schedules (local processes by default, a cluster with `address`); the driver only lists the photos, writes each
batch Ray hands back as a part file (`results`) and shows photos/s. A re-run skips what a killed run finished."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
from tqdm.auto import tqdm

from cropdx_hf.modeling.config import ONNX_FP32
from cropdx_hf.modeling.exports import ExportRecord
from cropdx_hf.scale import import_ray
from cropdx_hf.scale.diagnoser import SKIPPED, Diagnoser
from cropdx_hf.scale.results import done_keys, run_id, write_part, write_results
from cropdx_hf.scale.sources import PhotoSource
from cropdx_hf.scale.summary import summarize, write_summary

LOCAL_OBJECT_STORE = 256 * 2**20  # the photos travel as paths; batches of rows are small


@dataclass(frozen=True)
class BatchJob:
    """One survey: which release (and its ONNX export) diagnoses, where rows go, and on how many workers."""

    model_dir: Path
    export_dir: Path
    out: Path
    workers: int = 1
    batch_size: int = 32
    ray_address: str | None = None
    # the export's fp32 file by default: a survey's counts are then PyTorch's (`Predictor.diagnose`); the INT8 file,
    # faster, moves a photo in a few hundred across the threshold
    file_name: str = ONNX_FP32
    progress: bool = True


def run_batch(job: BatchJob, photos: list[PhotoSource]) -> dict[str, Any]:
    """Diagnose `photos` not already done in `job.out`; write the rows, the summary and its chart; return the
    summary. The release's export is checked on the driver first, so a wrong model fails before Ray starts."""
    ExportRecord.read(job.export_dir)
    job.out.mkdir(parents=True, exist_ok=True)
    ray = import_ray()
    started_ray = not ray.is_initialized()
    if started_ray:
        _start_ray(ray, job)
    try:
        run = _diagnose(ray, job, photos)
    finally:
        if started_ray:
            ray.shutdown()
    summary = summarize(write_results(job.out), run)
    write_summary(job.out, summary)
    return summary


def _start_ray(ray, job: BatchJob) -> None:
    # Ray 2.55 warns at every start that a future version will stop setting CUDA_VISIBLE_DEVICES for CPU-only
    # actors; this opts into that behaviour now (cropdx runs no GPU work here), which silences the warning
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    quiet = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": False}
    if job.ray_address:
        ray.init(address=job.ray_address, **quiet)
    else:  # embedded: one process per worker on this machine
        ray.init(num_cpus=job.workers, object_store_memory=LOCAL_OBJECT_STORE, **quiet)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = context.print_on_execution_start = False  # the driver's own bar shows photos/s
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # per-dataset "execution finished" lines and the like


def _diagnose(ray, job: BatchJob, photos: list[PhotoSource]) -> dict[str, Any]:
    done, run, start = done_keys(job.out), run_id(), time.perf_counter()
    rows = ray.data.from_items(photos).map_batches(
        Diagnoser, fn_constructor_kwargs={"model_dir": str(job.model_dir), "export_dir": str(job.export_dir),
                                          "done": done, "file_name": job.file_name},
        concurrency=job.workers, num_cpus=1, batch_size=job.batch_size, batch_format="pyarrow")
    counts = {"diagnosed": 0, "skipped_as_done": 0}
    with tqdm(total=len(photos), unit="photo", disable=not job.progress, desc="diagnosing") as bar:
        for number, table in enumerate(rows.iter_batches(batch_size=None, batch_format="pyarrow")):
            new = table.filter(pc.not_equal(table["status"], SKIPPED))
            if new.num_rows:
                write_part(job.out, new, run, number)
            counts["diagnosed"] += new.num_rows
            counts["skipped_as_done"] += table.num_rows - new.num_rows
            bar.update(table.num_rows)
    seconds = time.perf_counter() - start
    return {**counts, "workers": job.workers, "seconds": round(seconds, 1),
            "photos_per_second": round(counts["diagnosed"] / seconds, 2) if seconds else None}
