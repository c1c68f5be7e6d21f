"""The Space's server: a Gradio UI and a REST API on one FastAPI app, sharing one diagnosis path.

Routes: `/` (Gradio, API name "predict"), GET /health, GET /model/version, POST /predict (multipart),
GET /metrics (Prometheus). Uploaded photos are read into memory and their temporary files deleted at once.
"""

from __future__ import annotations

import base64
import io
import time
from pathlib import Path
from typing import Annotated, Any

import gradio as gr
from fastapi import FastAPI, File, Query, UploadFile
from fastapi.responses import JSONResponse, Response
from PIL import Image
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from .diagnosis import Diagnosis
from .explain import gradcam_overlay
from .images import MAX_BYTES, ImageError, load_image
from .labels import get_class
from .model_config import read_config
from .predict import Predictor
from .releases import recommended_model, release_names, resolve_model

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "space" / "examples"


class Service:
    """Loaded models, the diagnosis call and its Prometheus metrics (one registry per service)."""

    def __init__(self, models: list[str], default: str):
        self.dirs = {name: resolve_model(name) for name in dict.fromkeys([default, *models])}
        self.predictors = {name: Predictor.from_folder(path) for name, path in self.dirs.items()}
        self.default = default
        self.registry = CollectorRegistry()
        self.latency = Histogram("cropdx_request_latency_seconds", "Diagnosis latency", ["route"],
                                 registry=self.registry, buckets=(0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 5))
        self.predictions = Counter("cropdx_predictions", "Diagnoses by top class", ["model", "class_name"],
                                   registry=self.registry)
        self.outcomes = Counter("cropdx_outcomes", "Answers by status (diagnosed, retake, not_a_leaf, error)",
                                ["status"], registry=self.registry)

    def predictor(self, name: str | None) -> Predictor:
        return self.predictors.get(name or self.default) or self.predictors[self.default]

    def diagnose(self, data: bytes, model: str | None, route: str, name: str = "the upload") -> Diagnosis:
        start = time.perf_counter()
        try:
            result = self.predictor(model).diagnose(load_image(data, name=name))
        except ImageError:
            self.outcomes.labels("error").inc()
            raise
        finally:
            self.latency.labels(route).observe(time.perf_counter() - start)
        self.outcomes.labels(result.status).inc()
        if result.confident:
            self.predictions.labels(result.model, result.predictions[0]["class_name"]).inc()
        return result

    def version(self, name: str | None = None) -> dict[str, Any]:
        name = name if name in self.dirs else self.default
        config = read_config(self.dirs[name])
        meta = config.get("cropdx", {})
        return {"model": name, "architecture": config["architecture"], "classes": config["label_names"],
                "data_fingerprint": meta.get("data_fingerprint"), "temperature": meta.get("temperature"),
                "threshold": meta.get("threshold"), "test_metrics": meta.get("metrics", {}).get("test"),
                "available": list(self.dirs)}


def build_api(service: Service) -> FastAPI:
    api = FastAPI(title="cropdx", description="Tomato, potato and bell-pepper leaf diagnosis")

    @api.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "models": list(service.dirs), "default": service.default}

    @api.get("/model/version")
    def version(model: Annotated[str | None, Query()] = None) -> dict[str, Any]:
        return service.version(model)

    @api.post("/predict")
    def predict(file: Annotated[UploadFile, File()], model: Annotated[str | None, Query()] = None) -> JSONResponse:
        data = file.file.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            return JSONResponse({"error": f"upload over the {MAX_BYTES // 2**20} MB limit"}, status_code=413)
        try:
            return JSONResponse(service.diagnose(data, model, "rest", file.filename or "the upload").to_dict())
        except ImageError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

    @api.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(service.registry), media_type=CONTENT_TYPE_LATEST)

    return api


def _read_and_delete(path: str | None) -> bytes:
    """Gradio stores uploads in its cache; read the photo and remove it so no leaf photo stays on disk."""
    if not path:
        raise ImageError("no photo: upload, paste or take a photo first")
    file = Path(path)
    try:
        return file.read_bytes()
    finally:
        if not str(file).startswith(str(EXAMPLES_DIR)):
            file.unlink(missing_ok=True)


def _inline_image(image: Image.Image, caption: str) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<figure><img src="data:image/jpeg;base64,{data}" alt="{caption}"><figcaption>{caption} (Grad-CAM)' \
           "</figcaption></figure>"


def render_card(result: Diagnosis) -> str:
    if result.status != "diagnosed":
        return "\n".join([f"### {result.message}", "", *[f"- {tip}" for tip in result.tips]])
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


def build_ui(service: Service) -> gr.Blocks:
    def ui_predict(path: str | None, model: str):
        try:
            data = _read_and_delete(path)
            result = service.diagnose(data, model, "ui")
        except ImageError as exc:
            raise gr.Error(str(exc)) from exc
        labels = {f"{get_class(p['class_name']).display_name}": p["probability"] for p in result.predictions}
        cam = ""
        if result.predictions:
            predictor = service.predictor(model)
            top = predictor.label_names.index(result.predictions[0]["class_name"])
            cam = _inline_image(gradcam_overlay(predictor, load_image(data), top), "Where the model looked")
        return labels, render_card(result), cam

    def api_predict(path: str | None, model: str | None) -> dict[str, Any]:
        try:
            return service.diagnose(_read_and_delete(path), model, "gradio_api").to_dict()
        except ImageError as exc:
            return {"error": str(exc)}

    examples = sorted(str(p) for p in EXAMPLES_DIR.glob("*.jpg"))
    with gr.Blocks(title="cropdx: leaf disease diagnosis", analytics_enabled=False, delete_cache=(60, 60)) as demo:
        gr.Markdown("# cropdx\nPhotograph one tomato, potato or bell-pepper leaf to get the three likeliest "
                    "diagnoses with sourced advice. Decision support only: not a substitute for an agronomist.")
        with gr.Row():
            with gr.Column():
                photo = gr.Image(type="filepath", sources=["upload", "webcam", "clipboard"], label="Leaf photo")
                model = gr.Dropdown(list(service.dirs), value=service.default, label="Model")
                button = gr.Button("Diagnose", variant="primary")
                if examples:
                    gr.Examples(examples, inputs=photo, label="Example leaves")
            with gr.Column():
                label = gr.Label(num_top_classes=3, label="Top-3 diagnoses")
                card = gr.Markdown(elem_id="treatment-card")
                # HTML with a data URI: an image output would be written to Gradio's file cache
                cam = gr.HTML(label="Where the model looked (Grad-CAM)")
        button.click(ui_predict, [photo, model], [label, card, cam], api_name="diagnose_ui")
        api_photo = gr.File(type="filepath", visible=False)  # not gr.Image: it decodes (and keeps) bad files
        api_model = gr.Textbox(visible=False)
        api_out = gr.JSON(visible=False)
        gr.Button(visible=False).click(api_predict, [api_photo, api_model], api_out, api_name="predict")
    return demo.queue(default_concurrency_limit=4)


def create_app(default: str | None = None, models: list[str] | None = None) -> FastAPI:
    default = default or recommended_model()
    service = Service(models if models is not None else release_names(), default)
    api = build_api(service)
    api.state.service = service
    return gr.mount_gradio_app(api, build_ui(service), path="/", max_file_size=MAX_BYTES)
