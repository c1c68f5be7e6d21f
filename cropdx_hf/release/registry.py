"""The released models committed under models/, and resolution of `--model NAME_OR_DIR`."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from safetensors import safe_open

from cropdx_hf.errors import ModelFolderError
from cropdx_hf.modeling.config import CONFIG, WEIGHTS, read_config

_ROOT = Path(__file__).resolve().parents[1]
MODELS_DIR = Path(os.environ.get("CROPDX_MODELS_DIR", _ROOT / "models"))
EXPORTS_DIR = _ROOT / "exports"  # ONNX files: reproducible by `cropdx export`, never committed
GATE_EXPORT = "leaf_gate"  # exports/leaf_gate: the releases' shared gate as ONNX
DEFAULT_MODEL = "efficientnet_lite0"
# Each release stands in for a backbone that has no offline ImageNet weights here (README, "Releases").
STANDS_IN_FOR = {
    "efficientnet_lite0": "efficientnet_b0",
    "mobilenetv2_100": "mobilenetv3_small_100",
    "efficientnet_lite2": "resnet50",
}


def release_names() -> list[str]:
    if not MODELS_DIR.is_dir():
        return []
    return sorted(p.name for p in MODELS_DIR.iterdir() if (p / CONFIG).is_file() and (p / WEIGHTS).is_file())


def export_dir(name: str) -> Path:
    return EXPORTS_DIR / name


def recommended_model() -> str:
    """The model `cropdx compare` recommends, else the default release."""
    compare = _ROOT / "reports" / "compare" / "compare.json"
    if compare.is_file():
        name = json.loads(compare.read_text())["recommended"]
        if name in release_names():
            return name
    return DEFAULT_MODEL


def resolve_model(name_or_dir: str | Path | None = None) -> Path:
    """A release name, a model folder, or a Hub repo id (`org/name`, downloaded or read from the HF cache);
    None means the default release."""
    name = str(name_or_dir or DEFAULT_MODEL)
    if Path(name).is_dir():
        return Path(name)
    if name in release_names():
        return MODELS_DIR / name
    if name.count("/") == 1 and not name.startswith((".", "/")):
        return _from_hub(name)
    raise ModelFolderError(
        f"{name}: neither a model folder nor a release name (releases: {', '.join(release_names()) or 'none'})"
    )


def _from_hub(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        return Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "*.csv"]))
    except (RepositoryNotFoundError, LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
        raise ModelFolderError(f"{repo_id}: not a local folder or release, and the Hub has no such model "
                               f"reachable from here ({type(exc).__name__})") from exc


def count_parameters(weights: Path) -> int:
    """Learnable parameters in a safetensors file, read from its header (BatchNorm buffers excluded)."""
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    with safe_open(weights, "np") as f:  # header only; "np" keeps torch out of the ONNX path
        shapes = [f.get_slice(k).get_shape() for k in f.keys() if not k.endswith(buffers)]
    return int(sum(math.prod(shape) for shape in shapes))


def describe_release(name: str) -> dict[str, Any]:
    """What `cropdx models --json` lists: measured test metrics straight from the release's metrics.json."""
    folder = MODELS_DIR / name
    config = read_config(folder)
    metrics_file = folder / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    meta = config.get("cropdx", {})
    return {
        "name": name,
        "path": str(folder),
        "backbone": meta.get("backbone"),
        "architecture": config["architecture"],
        "stands_in_for": STANDS_IN_FOR.get(name),
        "default": name == DEFAULT_MODEL,
        "recommended": name == recommended_model(),
        "params": count_parameters(folder / WEIGHTS),
        "size_mb": round((folder / WEIGHTS).stat().st_size / 1e6, 2),
        "input_size": config["pretrained_cfg"]["input_size"],
        "test_metrics": metrics.get("test"),
    }
