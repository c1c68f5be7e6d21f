"""Leaf masks of lab photos, from their plain background.

The paper behind a PlantVillage leaf is grey, beige or bluish, and its shadows have the same hue, only darker;
leaves, lesions included, differ from it in chroma. So a pixel is leaf when its (a*, b*) chroma is far from
the border's median, with hysteresis so brown lesions joined to green tissue stay in; morphology then keeps
the largest piece and fills its holes. Checked by eye on 90 photos, 6 per class, and counted over the whole dev
pool (`python scripts/field_examples.py`: reports/field/masks.png and mask_stats.json). GrabCut gives similar
masks at ~10x the cost, too slow to run for every training view.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.color import rgb2lab
from skimage.filters import apply_hysteresis_threshold, threshold_otsu

WORK_SIZE = 128  # masks are computed on a copy this size: 4x cheaper than 256 px, edges are feathered anyway
BORDER = 4  # pixels of the working copy that sample the background
MIN_CHROMA = 8.0  # an Otsu threshold below this means there is no clear leaf/background contrast
MIN_AREA, MAX_AREA = 0.05, 0.92  # share of the photo a plausible single-leaf mask covers


@dataclass(frozen=True)
class LeafCutout:
    """The leaf as RGBA (alpha = mask), cropped to its bounding box; `area` is its share of the photo."""

    image: Image.Image
    area: float


def leaf_mask(image: Image.Image) -> np.ndarray | None:
    """Boolean leaf mask at WORK_SIZE, or None when the photo has no clear single leaf on a plain background."""
    small = np.asarray(image.convert("RGB").resize((WORK_SIZE, WORK_SIZE), Image.BILINEAR), np.float32) / 255
    lab = rgb2lab(small)
    border = np.concatenate([lab[:BORDER].reshape(-1, 3), lab[-BORDER:].reshape(-1, 3),
                             lab[:, :BORDER].reshape(-1, 3), lab[:, -BORDER:].reshape(-1, 3)])
    background = np.median(border, axis=0)
    chroma = np.hypot(lab[..., 1] - background[1], lab[..., 2] - background[2])
    high = max(float(threshold_otsu(chroma)), MIN_CHROMA)
    mask = ndimage.binary_opening(apply_hysteresis_threshold(chroma, high / 2, high), iterations=2)
    pieces, count = ndimage.label(mask)
    if count == 0:
        return None
    largest = 1 + int(np.argmax(ndimage.sum(mask, pieces, range(1, count + 1))))
    mask = ndimage.binary_fill_holes(ndimage.binary_closing(pieces == largest, iterations=6))
    return mask if MIN_AREA <= mask.mean() <= MAX_AREA else None


def cut_out_leaf(image: Image.Image) -> LeafCutout | None:
    """The leaf with a feathered alpha edge, or None when `leaf_mask` finds no usable mask."""
    mask = leaf_mask(image)
    if mask is None:
        return None
    rgb = image.convert("RGB")
    alpha = Image.fromarray(mask.astype(np.uint8) * 255).resize(rgb.size, Image.BILINEAR)
    cutout = rgb.copy()
    cutout.putalpha(alpha)
    return LeafCutout(cutout.crop(alpha.getbbox()), float(mask.mean()))
