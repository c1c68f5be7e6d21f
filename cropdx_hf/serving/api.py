"""The REST API on the Space's server: health, model version, diagnosis and Prometheus metrics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, File, Query, UploadFile
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from cropdx_hf.errors import UnknownModelError
from cropdx_hf.photos import MAX_BYTES, ImageError
from cropdx_hf.serving.service import Service


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
