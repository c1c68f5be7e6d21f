"""What the network sees in training: the lab augmentation, or field-style scenes, on the model's own config.

The lab augmentation is the seed design's 9-step recipe, written out because timm's `create_transform` has no
vertical flip, rotation or blur steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PIL import Image
from torchvision import transforms as T

from cropdx_hf.modeling.transforms import eval_transform


def train_transform(config: dict[str, Any]) -> T.Compose:
    size = config["input_size"][-1]
    interpolation = T.InterpolationMode(config.get("interpolation", "bicubic"))
    return T.Compose([
        T.RandomResizedCrop(size, scale=(0.8, 1.0), interpolation=interpolation),
        T.RandomHorizontalFlip(0.5),
        T.RandomVerticalFlip(0.2),
        T.RandomRotation(20, interpolation=T.InterpolationMode.BILINEAR),
        T.ColorJitter(0.2, 0.2, 0.2, 0.05),
        T.RandomApply([T.GaussianBlur(kernel_size=3)], p=0.2),
        T.ToTensor(),
        T.Normalize(config["mean"], config["std"]),
        T.RandomErasing(p=0.1),
    ])


def real_photo_transform(config: dict[str, Any]) -> T.Compose:
    """Views of a real field photo: it already has the field's scene and light, so views vary what one photo fixes:
    the framing (a third of the frame up to all of it), the leaf's orientation, the exposure and colour balance,
    and the focus."""
    size = config["input_size"][-1]
    return T.Compose([
        T.RandomResizedCrop(size, scale=(0.35, 1.0), interpolation=T.InterpolationMode(config.get("interpolation",
                                                                                                   "bicubic"))),
        T.RandomHorizontalFlip(0.5),
        T.RandomVerticalFlip(0.5),
        T.RandomApply([T.RandomRotation(30, interpolation=T.InterpolationMode.BILINEAR)], p=0.5),
        T.ColorJitter(0.3, 0.3, 0.3, 0.03),
        T.RandomApply([T.GaussianBlur(kernel_size=5)], p=0.2),
        T.ToTensor(),
        T.Normalize(config["mean"], config["std"]),
    ])


def field_train_transform(config: dict[str, Any], views: Callable[[Image.Image], Image.Image]) -> T.Compose:
    """Field-style views (`cropdx_hf.field.FieldViews`) through the model's own eval preprocessing: the scene
    already varies the leaf's size, place, angle and light, and served photos pass through exactly these steps."""
    return T.Compose([views, *eval_transform(config).transforms])


