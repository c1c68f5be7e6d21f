"""Publish a release (weights, config, card, metrics, plots, ONNX) or the Space to a Hugging Face Hub.

One commit per push through `HfApi.create_commit`, which skips files the Hub already holds unchanged, so a
re-push of the same release makes no new commit. The endpoint and token come from HF_ENDPOINT and HF_TOKEN
(or a login), as everywhere in huggingface_hub.
"""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi, get_token
from huggingface_hub.errors import HfHubHTTPError
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import Timeout

import cropdx_hf
from cropdx_hf.errors import HubError
from cropdx_hf.gate.leaf_gate import GATE_FOLDER
from cropdx_hf.inference.onnx_predictor import GATE_ONNX
from cropdx_hf.modeling.config import ONNX_FP32, ONNX_INT8
from cropdx_hf.modeling.exports import GATE_EXPORT_REPORT
from cropdx_hf.release.registry import Releases

SKIP_DIRS = {"checkpoints", "runs", "__pycache__"}
ONNX_FILES = (ONNX_FP32, ONNX_INT8, "config.json", "preprocessor_config.json", "export_metrics.json")


def _files(folder: Path, prefix: str = "") -> list[CommitOperationAdd]:
    return [CommitOperationAdd(path_in_repo=f"{prefix}{p.relative_to(folder).as_posix()}", path_or_fileobj=str(p))
            for p in sorted(folder.rglob("*"))
            if p.is_file() and not SKIP_DIRS & set(p.relative_to(folder).parts) and p.suffix != ".pyc"]


def _api() -> HfApi:
    if get_token() is None:
        raise HubError("no Hugging Face token: set HF_TOKEN or run `hf auth login` (a write token is needed)")
    api = HfApi()
    try:
        api.whoami()
    except (RequestsConnectionError, Timeout) as exc:
        raise HubError(f"cannot reach the Hub at {api.endpoint} ({type(exc).__name__}); check HF_ENDPOINT") from exc
    except HfHubHTTPError as exc:
        raise HubError(f"the Hub at {api.endpoint} refused the token ({exc.response.status_code})") from exc
    return api


def _commit(api: HfApi, repo_id: str, repo_type: str, operations: list[CommitOperationAdd], message: str,
            private: bool, **create_kwargs) -> str:
    try:
        api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True, **create_kwargs)
        return api.create_commit(repo_id, operations, commit_message=message, repo_type=repo_type).oid
    except (RequestsConnectionError, Timeout) as exc:
        raise HubError(f"lost the connection to {api.endpoint} while pushing {repo_id}") from exc
    except HfHubHTTPError as exc:
        raise HubError(f"{repo_id}: the Hub refused the push ({exc})") from exc


def push_model(model_dir: Path, repo_id: str, exports: Path | None = None, revision: str | None = None,
               private: bool = False, gate_exports: Path | None = None) -> str:
    """Push a model folder (its leaf gate is one of its files), and its ONNX exports with the gate network (under
    onnx/) when given; tag `revision` when given. Returns the commit id."""
    api = _api()
    operations = _files(model_dir)
    for folder, names in ((exports, ONNX_FILES), (gate_exports, (GATE_ONNX, GATE_EXPORT_REPORT))):
        if folder is not None and folder.is_dir():
            operations += [CommitOperationAdd(f"onnx/{name}", str(folder / name))
                           for name in names if (folder / name).is_file()]
    commit = _commit(api, repo_id, "model", operations, f"cropdx: push {model_dir.name}", private)
    if revision:
        api.create_tag(repo_id, tag=revision, revision=commit, exist_ok=True)
    return commit


def push_space(repo_id: str, space_dir: Path, releases: Releases, private: bool = False) -> str:
    """The Space folder plus what app.py needs beside it: the cropdx_hf package, the releases (models/), and their
    ONNX exports with the gate network they share (exports/), which the Space serves."""
    package = Path(cropdx_hf.__file__).parent
    operations = _files(space_dir) + _files(package, "cropdx_hf/")
    for name in releases.names():
        operations += _files(releases.models_dir / name, f"models/{name}/")
    for name in [*releases.names(), GATE_FOLDER]:
        if releases.exports_dir and (releases.exports_dir / name).is_dir():
            operations += _files(releases.exports_dir / name, f"exports/{name}/")
    return _commit(_api(), repo_id, "space", operations, "cropdx: push Space", private, space_sdk="gradio")
