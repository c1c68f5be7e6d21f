"""Publish a release (weights, config, card, metrics, plots, ONNX) or the Space to a Hugging Face Hub.

One commit per push through `HfApi.create_commit`, which skips files the Hub already holds unchanged, so a
re-push of the same release makes no new commit. The endpoint and token come from HF_ENDPOINT and HF_TOKEN
(or a login), as everywhere in huggingface_hub.
"""

from __future__ import annotations

import json
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi, get_token
from huggingface_hub.errors import HfHubHTTPError
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import Timeout

from cropdx_hf.errors import HubError
from cropdx_hf.gate.leaf_gate import GATE_FILE
from cropdx_hf.inference.onnx_predictor import GATE_EXPORT_REPORT, GATE_ONNX
from cropdx_hf.modeling.config import CONFIG, ONNX_FP32, ONNX_INT8, read_config
from cropdx_hf.release.registry import GATE_EXPORT, export_dir

SKIP_DIRS = {"checkpoints", "runs", "__pycache__"}
ONNX_FILES = (ONNX_FP32, ONNX_INT8, "config.json", "preprocessor_config.json", "export_metrics.json")
SPACE_ROOT = Path(__file__).resolve().parents[1]


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


def _self_contained(model_dir: Path) -> list[CommitOperationAdd]:
    """The release's files, with the leaf gate it shares with the other releases copied in and its config
    pointing at that copy: a pushed repo needs nothing beside it."""
    operations = _files(model_dir)
    config = read_config(model_dir)
    reference = config.get("cropdx", {}).get("leaf_gate")
    if reference:
        operations = [op for op in operations if op.path_in_repo != CONFIG]
        operations.append(CommitOperationAdd(GATE_FILE, str(model_dir / reference["file"])))
        config["cropdx"]["leaf_gate"] = {**reference, "file": GATE_FILE}
        operations.append(CommitOperationAdd(CONFIG, json.dumps(config, indent=2).encode()))
    return operations


def push_model(model_dir: Path, repo_id: str, revision: str | None = None, private: bool = False,
               exports: Path | None = None) -> str:
    """Push a model folder, its leaf gate and its exports (under onnx/); tag `revision` when given. Returns the
    commit id."""
    api = _api()
    exports = exports or export_dir(model_dir.name)
    operations = _self_contained(model_dir)
    if exports.is_dir():
        operations += [CommitOperationAdd(f"onnx/{name}", str(exports / name))
                       for name in ONNX_FILES if (exports / name).is_file()]
    gate_exports = export_dir(GATE_EXPORT)
    operations += [CommitOperationAdd(f"onnx/{name}", str(gate_exports / name))
                   for name in (GATE_ONNX, GATE_EXPORT_REPORT) if (gate_exports / name).is_file()]
    commit = _commit(api, repo_id, "model", operations, f"cropdx: push {model_dir.name}", private)
    if revision:
        api.create_tag(repo_id, tag=revision, revision=commit, exist_ok=True)
    return commit


def push_space(repo_id: str, private: bool = False, models: list[str] | None = None) -> str:
    """The Space folder plus what app.py imports: the cropdx_hf package and the released models."""
    from cropdx_hf.release.registry import MODELS_DIR, release_names

    operations = _files(SPACE_ROOT / "space") + _files(SPACE_ROOT / "cropdx_hf", "cropdx_hf/")
    for name in models or release_names():
        operations += _files(MODELS_DIR / name, f"models/{name}/")
    if (MODELS_DIR / GATE_EXPORT).is_dir():  # the gate the releases share, where their configs point
        operations += _files(MODELS_DIR / GATE_EXPORT, f"models/{GATE_EXPORT}/")
    for name in [*(models or release_names()), GATE_EXPORT]:  # ONNX files: the Space serves them
        if export_dir(name).is_dir():
            operations += _files(export_dir(name), f"exports/{name}/")
    return _commit(_api(), repo_id, "space", operations, "cropdx: push Space", private, space_sdk="gradio")
