"""The network the gate sees photos through: a bare ImageNet MobileNetV2, the same for every release.

Generic features tell a leaf from a dog far better than a fine-tuned classifier's, which folds everything onto
its 15 classes: on 40 non-leaf photos two feature levels of the fine-tuned efficientnet_lite0 rejected 85 %,
this network's pooled features all 40. It is the smallest network with offline ImageNet weights.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from PIL import Image

from cropdx_hf.gate.leaf_gate import GATE_BACKBONE
from cropdx_hf.modeling.transforms import channels_last, data_config, eval_transform


@functools.cache
def gate_network(name: str = GATE_BACKBONE) -> tuple[torch.nn.Module, Callable[[Image.Image], torch.Tensor]]:
    """The bare ImageNet network and its eval transform, built once per process and shared by all releases."""
    from cropdx_hf.modeling.backbones import create_backbone

    model = create_backbone(name).eval()
    return model, eval_transform(data_config(model))


def pooled_features(model: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    return model.forward_head(model.forward_features(channels_last(pixels)), pre_logits=True)
