"""A batch job's results on disk: one row per photo in parquet, written a part at a time so a killed job resumes.

Each batch the workers return becomes its own part file, written under a temporary name and renamed into place, so a
part is either whole or absent. A photo is done when a part holds a row with its path and sha256 (a changed file at
the same path is diagnosed again). The result is one sorted parquet file `datasets.load_dataset("parquet", ...)`
reads, rebuilt from the parts at the end of every run."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from cropdx_hf.inference.diagnosis import Diagnosis

PARTS_DIR = "parts"
RESULTS_FILE = "diagnoses.parquet"
SCHEMA = pa.schema([
    ("path", pa.string()),
    ("sha256", pa.string()),  # null when the file could not be read at all
    ("status", pa.string()),  # diagnosed | retake | not_a_leaf | error
    ("classes", pa.list_(pa.string())),  # the top 3, most likely first
    ("probabilities", pa.list_(pa.float64())),
    ("quality_passed", pa.bool_()),
    ("quality_failed", pa.list_(pa.string())),  # the names of the photo checks it failed
    ("model", pa.string()),
    ("model_version", pa.string()),  # sha256 of the release's weights, first 12 hex digits
    ("error", pa.string()),
])


def diagnosis_row(path: str, sha256: str, diagnosis: Diagnosis, version: str) -> dict[str, Any]:
    quality = diagnosis.quality
    return {"path": path, "sha256": sha256, "status": diagnosis.status,
            "classes": [c.class_name for c in diagnosis.predictions],
            "probabilities": [c.probability for c in diagnosis.predictions],
            "quality_passed": quality.passed if quality else None,
            "quality_failed": [check.name for check in quality.failed] if quality else [],
            "model": diagnosis.model, "model_version": version, "error": None}


def error_row(path: str, sha256: str | None, error: str, model: str, version: str) -> dict[str, Any]:
    return {"path": path, "sha256": sha256, "status": "error", "classes": [], "probabilities": [],
            "quality_passed": None, "quality_failed": [], "model": model, "model_version": version, "error": error}


def run_id() -> str:
    """Names one run's parts so that sorting the names sorts the runs by start."""
    return f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"


def write_part(out: Path, table: pa.Table, run: str, number: int) -> Path:
    """One batch's rows as a part file, renamed into place only once it is whole."""
    parts = out / PARTS_DIR
    parts.mkdir(parents=True, exist_ok=True)
    final = parts / f"part-{run}-{number:06d}.parquet"
    temporary = final.with_suffix(".tmp")
    pq.write_table(table, temporary)
    temporary.replace(final)
    return final


def read_parts(out: Path) -> pa.Table:
    """Every row written so far, oldest run first (temporary files of a killed run are left out)."""
    files = sorted((out / PARTS_DIR).glob("part-*.parquet"))
    if not files:
        return SCHEMA.empty_table()
    return pa.concat_tables([pq.read_table(f, schema=SCHEMA) for f in files])


def done_keys(out: Path) -> set[tuple[str, str]]:
    """The photos already diagnosed, by path and sha256 (rows of unreadable files have no sha256: retried)."""
    table = read_parts(out)
    return {(p, s) for p, s in zip(table["path"].to_pylist(), table["sha256"].to_pylist(), strict=True) if s}


def write_results(out: Path) -> pa.Table:
    """The parts as one file, one row per path (its latest), sorted by path: the job's result, the same rows however
    the work was split or resumed."""
    frame = read_parts(out).to_pandas().drop_duplicates("path", keep="last").sort_values("path", kind="stable")
    table = pa.Table.from_pandas(frame, schema=SCHEMA, preserve_index=False)
    pq.write_table(table, out / RESULTS_FILE)
    return table
