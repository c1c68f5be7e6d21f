"""The service behind the Space: loaded models, one diagnosis call and its Prometheus metrics.

Each model is served by ONNX Runtime from its export (INT8 where the export's verification qualified it) with
the exported leaf gate; a model without an export is served by PyTorch, and the log says so at start-up.
PyTorch is imported only for that, or when someone asks for Grad-CAM.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from PIL import Image
from prometheus_client import CollectorRegistry, Counter, Histogram

from cropdx_hf.errors import UnknownModelError
from cropdx_hf.inference.diagnosis import Diagnosis
from cropdx_hf.inference.onnx_predictor import OnnxPredictor
from cropdx_hf.modeling.config import ONNX_INT8, class_ids, read_config
from cropdx_hf.modeling.exports import EXPORT_REPORT
from cropdx_hf.modeling.metadata import ReleaseMetadata
from cropdx_hf.photos import ImageError, load_image

logger = logging.getLogger(__name__)
BACKENDS = ("auto", "onnx", "torch")


class Service:
    """Loaded models, the diagnosis call and its Prometheus metrics (one registry per service)."""

    def __init__(self, model_dirs: dict[str, Path], default: str, exports_dir: Path | None = None,
                 backend: str = "auto", threads: int = 1):
        if default not in model_dirs:
            raise UnknownModelError(default, list(model_dirs))
        self.dirs, self.default, self.threads = model_dirs, default, threads
        self.exports_dir = exports_dir
        self.backends: dict[str, str] = {}
        self.predictors = {name: self._load(name, path, backend) for name, path in model_dirs.items()}
        self._torch: dict[str, Any] = {}
        self.registry = CollectorRegistry()
        self.latency = Histogram("cropdx_request_latency_seconds", "Diagnosis latency", ["route"],
                                 registry=self.registry, buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 5))
        self.predictions = Counter("cropdx_predictions", "Diagnoses by top class", ["model", "class_name"],
                                   registry=self.registry)
        self.outcomes = Counter("cropdx_outcomes", "Answers by status (diagnosed, retake, not_a_leaf, error)",
                                ["status"], registry=self.registry)

    def _load(self, name: str, model_dir: Path, backend: str):
        export = self.exports_dir / name if self.exports_dir else None
        if backend != "torch" and export is not None and (export / EXPORT_REPORT).is_file():
            predictor = OnnxPredictor.for_release(model_dir, export, self.threads)
            precision = "INT8" if predictor.file_name == ONNX_INT8 else "fp32"
            self.backends[name] = f"onnxruntime ({precision} classifier{', ONNX leaf gate' if predictor.gate else ''})"
        elif backend == "onnx":
            raise UnknownModelError(name, [], f"{name}: no ONNX export under {export}; run `cropdx export`")
        else:
            import torch

            from cropdx_hf.inference.predictor import Predictor

            torch.set_num_threads(self.threads)
            predictor = Predictor.from_folder(model_dir)
            self.backends[name] = "pytorch"
            if backend == "auto":
                logger.warning("%s: no ONNX export under %s, serving with PyTorch (slower; `cropdx export` makes "
                               "one)", name, export)
        logger.info("%s: %s", name, self.backends[name])
        return predictor

    def check(self, name: str | None) -> str:
        """The model a request asked for, or the default; an unknown name is an error, never the default."""
        name = name or self.default
        if name not in self.predictors:
            raise UnknownModelError(name, list(self.predictors))
        return name

    def diagnose(self, data: bytes, model: str | None, route: str, name: str = "the upload") -> Diagnosis:
        predictor = self.predictors[self.check(model)]
        start = time.perf_counter()
        try:
            result = predictor.diagnose(load_image(data, name=name))
        except ImageError:
            self.outcomes.labels("error").inc()
            raise
        finally:
            self.latency.labels(route).observe(time.perf_counter() - start)
        self.outcomes.labels(result.status).inc()
        if result.confident:
            self.predictions.labels(result.model, result.predictions[0].class_name).inc()
        return result

    def explain(self, data: bytes, model: str | None, class_name: str) -> Image.Image:
        """Grad-CAM for `class_name`: the one place the service needs PyTorch, loaded on first use."""
        from cropdx_hf.inference.explain import gradcam_overlay
        from cropdx_hf.inference.predictor import Predictor

        name = self.check(model)
        if name not in self._torch:
            self._torch[name] = Predictor.from_folder(self.dirs[name])
        predictor = self._torch[name]
        return gradcam_overlay(predictor, load_image(data), predictor.class_ids.index(class_name))

    def version(self, name: str | None = None) -> dict[str, Any]:
        name = self.check(name)
        config = read_config(self.dirs[name])
        meta = ReleaseMetadata.from_config(config)
        return {"model": name, "architecture": config["architecture"], "classes": class_ids(config),
                "data_fingerprint": meta.data_fingerprint, "temperature": meta.temperature,
                "threshold": meta.threshold, "test_metrics": (meta.metrics or {}).get("test"),
                "backend": self.backends[name], "available": list(self.dirs)}
