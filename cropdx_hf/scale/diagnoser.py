"""One worker of a batch job: a Ray Data actor holding one ONNX session, diagnosing a batch of photos at a time
through the same path as the Space (`OnnxPredictor.diagnose_many`: leaf gate, photo-quality check, threshold)."""

from __future__ import annotations

import hashlib
from typing import Any

import pyarrow as pa

from cropdx_hf.inference.onnx_predictor import OnnxPredictor
from cropdx_hf.modeling.exports import ExportRecord
from cropdx_hf.photos import ImageError, load_image, read_photo_bytes
from cropdx_hf.scale.results import SCHEMA, diagnosis_row, error_row

SKIPPED = "skipped"  # a photo an earlier run diagnosed: counted by the driver, never written
# photos per ONNX Runtime call: the session's memory arena keeps its largest size, which grows with the batch, and
# on one thread a larger call gains little (docs/scale.md)
ONNX_CHUNK = 4


class Diagnoser:
    """Ray builds one per worker (`map_batches(Diagnoser, concurrency=N)`); ONNX Runtime gets one thread each, so N
    workers fill N cores."""

    def __init__(self, model_dir: str, export_dir: str, done: set[tuple[str, str]], file_name: str):
        self.predictor = OnnxPredictor.for_release(model_dir, export_dir, threads=1, file_name=file_name)
        self.version = (ExportRecord.read(export_dir).weights_sha256 or "")[:12]
        self.done = done

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows: list[dict[str, Any]] = []
        photos, keys = [], []
        for path, image in zip(batch["path"].to_pylist(), batch["image"].to_pylist(), strict=True):
            row, data = self._read(path, image)
            if row is not None:
                rows.append(row)
                continue
            sha256 = hashlib.sha256(data).hexdigest()
            if (path, sha256) in self.done:
                rows.append({"path": path, "sha256": sha256, "status": SKIPPED})
                continue
            try:
                photos.append(load_image(data, name=path))
                keys.append((path, sha256))
            except ImageError as exc:
                rows.append(self._error(path, sha256, str(exc)))
        diagnoses = [diagnosis for start in range(0, len(photos), ONNX_CHUNK)
                     for diagnosis in self.predictor.diagnose_many(photos[start:start + ONNX_CHUNK])]
        rows += [diagnosis_row(path, sha256, diagnosis, self.version)
                 for (path, sha256), diagnosis in zip(keys, diagnoses, strict=True)]
        return pa.Table.from_pylist(rows, schema=SCHEMA)

    def _read(self, path: str, image: bytes | None) -> tuple[dict[str, Any] | None, bytes]:
        """The photo's bytes, or an error row for a file that cannot be read (too big to read is an error too)."""
        if image is not None:
            return None, image
        try:
            return None, read_photo_bytes(path, path)
        except ImageError as exc:
            return self._error(path, None, str(exc)), b""
        except OSError as exc:
            return self._error(path, None, f"{path}: cannot be read ({exc.strerror or exc})"), b""

    def _error(self, path: str, sha256: str | None, error: str) -> dict[str, Any]:
        return error_row(path, sha256, error, self.predictor.name, self.version)
