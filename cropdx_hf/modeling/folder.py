"""Save and load classifiers as timm/transformers-native folders that load anywhere without cropdx.

A folder holds config.json (timm's `architecture`, `num_classes`, `label_names`, `pretrained_cfg`, plus
transformers' `id2label`/`label2id`, all with display names, and our metadata under `cropdx`), model.safetensors and
preprocessor_config.json. timm (`local-dir:`/`hf-hub:`), `AutoModelForImageClassification`,
`AutoImageProcessor` and `pipeline("image-classification")` all read it without custom code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import timm
import torch
from safetensors.torch import save_file
from timm.models._hub import save_config_for_hf

from cropdx_hf.errors import ModelFolderError
from cropdx_hf.labels import display_name
from cropdx_hf.modeling.config import CONFIG, PREPROCESSOR, WEIGHTS, read_config
from cropdx_hf.modeling.metadata import ReleaseMetadata


def save_model_folder(
    model: torch.nn.Module, out_dir: str | Path, class_names: list[str], metadata: ReleaseMetadata | None = None
) -> Path:
    """Write weights, config and preprocessing; `metadata` (training config, metrics...) goes under `cropdx`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, out / WEIGHTS, metadata={"format": "pt"})
    # timm, transformers' TimmWrapper (pipeline, AutoModel) and optimum's ORTModel name the outputs from
    # label_names: the names people read; cropdx maps them back to class ids (modeling.config.class_ids)
    names = [display_name(name) for name in class_names]
    save_config_for_hf(model, str(out / CONFIG), model_config={"label_names": names})
    config = json.loads((out / CONFIG).read_text())
    # timm 1.0.31 records num_classes in model_args too, which breaks TimmWrapper ("multiple values")
    config.get("model_args", {}).pop("num_classes", None)
    if not config.get("model_args"):
        config.pop("model_args", None)
    config["id2label"] = {str(i): name for i, name in enumerate(names)}
    config["label2id"] = {name: i for i, name in enumerate(names)}
    config["cropdx"] = (metadata or ReleaseMetadata()).to_config()
    (out / CONFIG).write_text(json.dumps(config, indent=2))
    write_preprocessor(out, config)
    return out


def write_preprocessor(out: Path, config: dict[str, Any]) -> None:
    """AutoImageProcessor builds TimmWrapperImageProcessor from this file when it exists, so it must hold the
    same `pretrained_cfg` as config.json (which timm and TimmWrapperConfig read)."""
    processor = {"image_processor_type": "TimmWrapperImageProcessor", "architecture": config["architecture"],
                 "pretrained_cfg": config["pretrained_cfg"]}
    (out / PREPROCESSOR).write_text(json.dumps(processor, indent=2))


def load_model_folder(model_dir: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The model in eval mode and its config; errors name the folder and the problem."""
    config = read_config(model_dir)
    try:
        model = timm.create_model(f"local-dir:{Path(model_dir).resolve()}", pretrained=True)
    except Exception as exc:  # timm/safetensors raise many types for a broken file
        raise ModelFolderError(f"{model_dir}: the weights do not load ({type(exc).__name__}: {exc})") from exc
    return model.eval(), config
