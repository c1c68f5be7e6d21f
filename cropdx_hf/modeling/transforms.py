"""Preprocessing driven by the model's own `pretrained_cfg` (input size, mean/std, crop, interpolation).

Evaluation and serving use timm's deterministic eval transform; training views are in cropdx_hf.training.views.
Batches enter the networks in channels-last layout.
"""

from __future__ import annotations

from typing import Any

import timm.data
import torch
from torchvision import transforms as T

from cropdx_hf.photos import load_stored_photo


def data_config(model: torch.nn.Module, image_size: int | None = None, crop_pct: float | None = None
                ) -> dict[str, Any]:
    """timm's resolved data config, optionally at another square resolution (e.g. low-res training) and centre
    crop."""
    config = timm.data.resolve_model_data_config(model)
    if image_size is not None:
        config["input_size"] = (3, image_size, image_size)
    if crop_pct is not None:
        config["crop_pct"] = crop_pct
    return config


def eval_transform(config: dict[str, Any]) -> T.Compose:
    return timm.data.create_transform(**config, is_training=False)


def set_preprocessing(model: torch.nn.Module, config: dict[str, Any]) -> None:
    """Makes `config` the model's own: `data_config`, the predictors and a saved folder all read `pretrained_cfg`."""
    model.pretrained_cfg = {**model.pretrained_cfg,
                            **{k: config[k] for k in ("input_size", "mean", "std", "crop_pct", "interpolation")}}


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """NHWC layout for image-shaped batches: oneDNN's depthwise and 1x1 convolutions train 1.5-1.7x faster on it
    on the 2-core CPU (`scripts/bench_layout.py`); the weights may stay as they are, PyTorch picks the layout
    from the input."""
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def batch_transform(transform: T.Compose):
    """A `datasets.set_transform` function: undecoded image dicts in, `pixel_values` tensors out."""

    def apply(batch: dict[str, list]) -> dict[str, list]:
        images = [load_stored_photo(img) for img in batch["image"]]
        out = {"pixel_values": [transform(image) for image in images]}
        if "label" in batch:
            out["labels"] = batch["label"]
        return out

    return apply
