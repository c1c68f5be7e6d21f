"""Reading and amending a model folder's config.json: torch-free, shared by PyTorch and ONNX paths."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cropdx_hf.errors import ModelFolderError
from cropdx_hf.labels import resolve_label

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
PREPROCESSOR = "preprocessor_config.json"
ONNX_FP32, ONNX_INT8 = "model.onnx", "model_int8.onnx"  # an export folder's classifier files


def class_ids(config: dict[str, Any]) -> list[str]:
    """The cropdx class id of each output. `label_names` holds display names ("Tomato: Early blight"), what timm,
    transformers and optimum show; folders of older cropdx versions hold the ids there. Both resolve."""
    ids = [resolve_label(name) for name in config["label_names"]]
    unknown = [name for name, class_id in zip(config["label_names"], ids, strict=True) if class_id is None]
    if unknown:
        raise ModelFolderError(f"labels {unknown} are not cropdx classes")
    return ids


def read_config(model_dir: str | Path, weights: str = WEIGHTS) -> dict[str, Any]:
    """config.json of a model folder holding `weights`; errors name the folder and what is wrong."""
    path = Path(model_dir)
    config_path = path / CONFIG
    if not path.is_dir():
        raise ModelFolderError(f"{model_dir}: no such model folder")
    missing = [name for name in (CONFIG, weights) if not (path / name).is_file()]
    if missing:
        raise ModelFolderError(f"{model_dir}: not a model folder (missing {', '.join(missing)})")
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelFolderError(f"{config_path}: invalid JSON ({exc})") from exc
    absent = [k for k in ("architecture", "num_classes", "label_names", "pretrained_cfg") if k not in config]
    if absent:
        raise ModelFolderError(f"{config_path}: not a timm model config (missing {', '.join(absent)})")
    return config
