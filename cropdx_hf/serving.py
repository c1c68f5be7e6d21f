"""The service behind the Space: loaded models, one diagnosis call, Prometheus metrics and the REST API.

Each model is served by ONNX Runtime from its export (INT8 where the export's verification qualified it) with
the exported leaf gate; a model without an export is served by PyTorch, and the log says so at start-up.
PyTorch is imported only for that, or when someone asks for Grad-CAM. The Gradio page lives in space/app.py.
"""

from __future__ import annotations

import base64
import io
import logging
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, File, Query, UploadFile
from fastapi.responses import JSONResponse, Response
from PIL import Image
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from cropdx_hf.errors import UnknownModelError
from cropdx_hf.inference.diagnosis import Diagnosis
from cropdx_hf.inference.images import MAX_BYTES, ImageError, load_image
from cropdx_hf.inference.onnx_predictor import EXPORT_REPORT, OnnxPredictor
from cropdx_hf.labels import get_class
from cropdx_hf.modeling.config import ONNX_INT8, read_config

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
            from cropdx_hf.release.registry import GATE_EXPORT

            predictor = OnnxPredictor.for_release(model_dir, export, self.exports_dir / GATE_EXPORT, self.threads)
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
            self.predictions.labels(result.model, result.predictions[0]["class_name"]).inc()
        return result

    def explain(self, data: bytes, model: str | None, class_name: str) -> Image.Image:
        """Grad-CAM for `class_name`: the one place the service needs PyTorch, loaded on first use."""
        from cropdx_hf.inference.explain import gradcam_overlay
        from cropdx_hf.inference.predictor import Predictor

        name = self.check(model)
        if name not in self._torch:
            self._torch[name] = Predictor.from_folder(self.dirs[name])
        predictor = self._torch[name]
        return gradcam_overlay(predictor, load_image(data), predictor.label_names.index(class_name))

    def version(self, name: str | None = None) -> dict[str, Any]:
        name = self.check(name)
        config = read_config(self.dirs[name])
        meta = config.get("cropdx", {})
        return {"model": name, "architecture": config["architecture"], "classes": config["label_names"],
                "data_fingerprint": meta.get("data_fingerprint"), "temperature": meta.get("temperature"),
                "threshold": meta.get("threshold"), "test_metrics": meta.get("metrics", {}).get("test"),
                "backend": self.backends[name], "available": list(self.dirs)}


def build_api(service: Service) -> FastAPI:
    api = FastAPI(title="cropdx", description="Tomato, potato and bell-pepper leaf diagnosis")

    @api.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "models": list(service.dirs), "default": service.default}

    @api.get("/model/version")
    def version(model: Annotated[str | None, Query()] = None) -> JSONResponse:
        try:
            return JSONResponse(service.version(model))
        except UnknownModelError as exc:
            return JSONResponse({"error": str(exc), "available": exc.available}, status_code=404)

    @api.post("/predict")
    def predict(file: Annotated[UploadFile, File()], model: Annotated[str | None, Query()] = None) -> JSONResponse:
        data = file.file.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            return JSONResponse({"error": f"upload over the {MAX_BYTES // 2**20} MB limit"}, status_code=413)
        try:
            return JSONResponse(service.diagnose(data, model, "rest", file.filename or "the upload").to_dict())
        except UnknownModelError as exc:
            return JSONResponse({"error": str(exc), "available": exc.available}, status_code=404)
        except ImageError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

    @api.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(service.registry), media_type=CONTENT_TYPE_LATEST)

    return api


def inline_image(image: Image.Image, caption: str) -> str:
    """HTML with the image as a data URI: nothing derived from a photo is written to disk."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<figure><img src="data:image/jpeg;base64,{data}" alt="{caption}"><figcaption>{caption} (Grad-CAM)' \
           "</figcaption></figure>"


def top3_labels(result: Diagnosis) -> dict[str, float]:
    return {get_class(p["class_name"]).display_name: p["probability"] for p in result.predictions}


def render_card(result: Diagnosis) -> str:
    """Markdown for the page: the treatment card, or why to retake the photo and how."""
    if result.status != "diagnosed":
        lines = [f"### {result.message}", "", *[f"- {tip}" for tip in result.tips]]
        if result.quality and result.quality.failed:
            lines += ["", "**Photo checks that failed:** " + "; ".join(
                f"{c.name.replace('_', ' ')} ({', '.join(f'{k} {v}' for k, v in c.measured.items())})"
                for c in result.quality.failed)]
        return "\n".join(lines)
    t = result.treatment
    lines = [f"## {t['crop']}: {t['disease']}", ""]
    if t["healthy"]:
        lines += ["**No treatment needed.** Care tips:", "", *[f"- {a}" for a in t["actions"]]]
    else:
        lines += [f"**Cause:** {t['cause']}", "", f"**Severity:** {t['severity']} · **Urgency:** {t['urgency']}",
                  "", "**What to do**", "", *[f"- {a}" for a in t["actions"]]]
        if t["active_ingredients"]:
            lines += ["", "**Active ingredients** (by class, no brands)", "",
                      *[f"- {i['name']}: {i['class']}" + (f" ({i['note']})" if i.get("note") else "")
                        for i in t["active_ingredients"]]]
        lines += ["", "**Caveats**", "", *[f"- {c}" for c in t["caveats"] + t["verify"]]]
    lines += ["", "**Sources:** " + ", ".join(f"[{s['code']}]({s['url']})" for s in t["sources"]), "",
              f"*{t['disclaimer']}*"]
    return "\n".join(lines)
