"""The REST API (`/predict`, `/health`, `/model/version`, `/metrics`) as a Ray Serve application: replicas on one
machine or a cluster, each a process with its own `Service` (ONNX sessions), behind Serve's HTTP proxy.

    serve run configs/serve.yaml                      # replicas and autoscaling from the config file
    serve run cropdx_hf.scale.serve:app models_dir=models exports_dir=exports

The Gradio Space stays the one-process default; this is the same API, replicated."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from cropdx_hf.errors import ModelFolderError
from cropdx_hf.release.registry import DEFAULT_RELEASE, Releases, resolve_models
from cropdx_hf.scale import import_ray
from cropdx_hf.serving.api import build_api
from cropdx_hf.serving.service import Service

DEPLOYMENT = "cropdx"  # the name configs/serve.yaml sets replicas and autoscaling for


@dataclass(frozen=True)
class ServeSettings:
    """What every replica loads: the default model, the others offered (default: every release), their folders
    (default: $CROPDX_MODELS and $CROPDX_EXPORTS) and ONNX Runtime threads per request."""

    models_dir: str
    exports_dir: str
    model: str = DEFAULT_RELEASE
    models: tuple[str, ...] = ()
    threads: int = 1

    @classmethod
    def from_args(cls, args: dict[str, Any]) -> ServeSettings:
        """`serve run ... key=value` or a config's `args:`; folders become absolute here, on the machine that
        deploys, since replicas start in other working directories."""
        unknown = sorted(set(args) - set(cls.__dataclass_fields__))
        if unknown:
            raise ModelFolderError(f"unknown serve argument(s) {', '.join(unknown)}; known: "
                                   f"{', '.join(cls.__dataclass_fields__)}")
        models = args.get("models", ())
        models = tuple(models.split(",")) if isinstance(models, str) else tuple(models)
        releases = Releases.from_settings(args.get("models_dir"), args.get("exports_dir"))
        if releases is None or releases.exports_dir is None:
            raise ModelFolderError("the Serve app needs a models and an exports folder: pass models_dir and "
                                   "exports_dir, or set CROPDX_MODELS and CROPDX_EXPORTS")
        return cls(str(releases.models_dir.resolve()), str(releases.exports_dir.resolve()),
                   str(args.get("model", DEFAULT_RELEASE)), models, int(args.get("threads", 1)))

    def model_dirs(self) -> dict[str, Path]:
        releases = Releases(Path(self.models_dir), Path(self.exports_dir))
        return resolve_models(self.model, list(self.models) or releases.names(), releases)

    def service(self) -> Service:
        """ONNX only: a release without an export is an error, never a silent PyTorch fallback."""
        return Service(self.model_dirs(), Path(self.model).name, Path(self.exports_dir), "onnx", self.threads)


def app(args: dict[str, Any]):
    """Serve's application builder: checks the settings where `serve run` is typed, then each replica builds the
    API over its own Service when it starts (the sessions cannot travel between processes)."""
    import_ray()
    from ray import serve

    settings = ServeSettings.from_args(args)
    settings.model_dirs()  # unknown model names fail here, not in every replica

    def replica_api() -> FastAPI:
        return build_api(settings.service())

    return serve.deployment(serve.ingress(replica_api)(), name=DEPLOYMENT).bind()
