"""The REST API on the Space's server: health, model version, diagnosis and Prometheus metrics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, File, Query, UploadFile
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from cropdx_hf.errors import UnknownModelError
from cropdx_hf.photos import MAX_BYTES, ImageError
from cropdx_hf.serving.service import Service

CLIENT_ERRORS = (ImageError, UnknownModelError)  # what a request can get wrong; anything else is the server's


def error_payload(exc: ImageError | UnknownModelError) -> tuple[dict[str, Any], int]:
    """A client error as every API answers it (REST and the Gradio API): its sentence, the models there are for
    an unknown one, and its HTTP status."""
    if isinstance(exc, UnknownModelError):
        return {"error": str(exc), "available": exc.available}, 404
    return {"error": str(exc)}, 400


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
            payload, status = error_payload(exc)
            return JSONResponse(payload, status_code=status)

    @api.post("/predict")
    def predict(file: Annotated[UploadFile, File()], model: Annotated[str | None, Query()] = None) -> JSONResponse:
        data = file.file.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            return JSONResponse({"error": f"upload over the {MAX_BYTES // 2**20} MB limit"}, status_code=413)
        try:
            return JSONResponse(service.diagnose(data, model, "rest", file.filename or "the upload").to_dict())
        except CLIENT_ERRORS as exc:
            payload, status = error_payload(exc)
            return JSONResponse(payload, status_code=status)

    @api.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(service.registry), media_type=CONTENT_TYPE_LATEST)

    return api
