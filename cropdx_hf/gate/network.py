"""The networks the gate reads a photo through: the release's classifier and a bare ImageNet MobileNetV2.

The generic network is the same for every release, the smallest one with offline ImageNet weights, run at
GATE_IMAGE_SIZE. The classifier's pooled features are the ones its head turns into logits, so the PyTorch and
ONNX predictors get them from the pass that diagnoses the photo.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from PIL import Image

from cropdx_hf.gate.leaf_gate import GATE_BACKBONE, GATE_IMAGE_SIZE
from cropdx_hf.modeling.transforms import channels_last, data_config, eval_transform, set_preprocessing


@functools.cache
def gate_network(name: str = GATE_BACKBONE, image_size: int = GATE_IMAGE_SIZE
                 ) -> tuple[torch.nn.Module, Callable[[Image.Image], torch.Tensor]]:
    """The bare ImageNet network at `image_size` and its eval transform, built once per process."""
    from cropdx_hf.modeling.backbones import create_backbone

    model = create_backbone(name).eval()
    set_preprocessing(model, data_config(model, image_size))
    return model, eval_transform(data_config(model))


def pooled_features(model: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """What a timm classifier's last linear layer reads: the globally pooled features."""
    return model.forward_head(model.forward_features(channels_last(pixels)), pre_logits=True)


def generic_features(images: list[Image.Image], name: str = GATE_BACKBONE, image_size: int = GATE_IMAGE_SIZE
                     ) -> torch.Tensor:
    model, transform = gate_network(name, image_size)  # built outside inference mode: ONNX export traces it too
    with torch.inference_mode():
        return pooled_features(model, torch.stack([transform(image) for image in images]))
