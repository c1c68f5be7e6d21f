"""Where the scenes behind a field-style leaf come from: real photos, procedural textures, leaf collages.

Photos come from a folder that `scripts/field_photos.py` fills from Debian and PyPI packages (sources and
licences in the README); training and the field-proxy set use disjoint folders, so the proxy scores a model on
scenes it never saw. A folder that is missing or empty is an error, never a silent switch to textures only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from cropdx_hf.errors import DataError
from cropdx_hf.field.masks import LeafCutout
from cropdx_hf.field.textures import TEXTURES, Size, foliage, soil
from cropdx_hf.photos import ImageError, folder_photos, load_image

MAX_SIDE = 768  # photos are kept in memory at most this size: crops of them fill a ~300-px canvas


@dataclass
class BackgroundBank:
    """Draws one background per call: a crop of a photo, a procedural texture or a collage of other leaves."""

    photos: Sequence[Image.Image]
    leaves: Sequence[LeafCutout] = ()
    photo_share: float = 0.5
    collage_share: float = 0.15
    fingerprint: str = field(default="procedural only")

    @classmethod
    def from_folder(cls, folder: str | Path, leaves: Sequence[LeafCutout] = ()) -> BackgroundBank:
        """Every photo under `folder` (recursively), downscaled once."""
        root = Path(folder)
        files = folder_photos(root) if root.is_dir() else []
        if not files:
            raise DataError(f"{folder}: no background photos (fill it with `python scripts/field_photos.py`)")
        digest = hashlib.sha256()
        photos = []
        for path in files:
            try:
                photo = load_image(path)
            except ImageError as exc:
                raise DataError(f"{path}: unusable background photo ({exc})") from exc
            photo.thumbnail((MAX_SIDE, MAX_SIDE))
            photos.append(photo)
            digest.update(path.relative_to(root).as_posix().encode() + hashlib.sha256(path.read_bytes()).digest())
        return cls(photos, leaves, fingerprint=f"{len(files)} photos, sha256 {digest.hexdigest()[:16]}")

    def draw(self, rng: np.random.Generator, size: Size) -> Image.Image:
        roll = rng.random()
        if self.photos and roll < self.photo_share:
            return self._photo_crop(rng, size)
        if self.leaves and roll < self.photo_share + self.collage_share:
            return leaf_collage(self.leaves, rng, size)
        kinds = list(TEXTURES)
        return TEXTURES[kinds[rng.integers(len(kinds))]](rng, size)

    def _photo_crop(self, rng: np.random.Generator, size: Size) -> Image.Image:
        photo = self.photos[rng.integers(len(self.photos))]
        if rng.random() < 0.5:
            photo = ImageOps.mirror(photo)
        width, height = photo.size
        share = rng.uniform(0.15, 1.0)  # of the largest crop of the canvas's aspect ratio
        aspect = size[0] / size[1]
        crop_w = min(width, height * aspect) * np.sqrt(share)
        crop_h = crop_w / aspect
        left, top = rng.uniform(0, width - crop_w), rng.uniform(0, height - crop_h)
        return photo.resize(size, Image.BILINEAR, box=(left, top, left + crop_w, top + crop_h))


def leaf_collage(leaves: Sequence[LeafCutout], rng: np.random.Generator, size: Size) -> Image.Image:
    """Other leaves scattered over soil or foliage, out of focus: the rest of the plant behind the one in view."""
    canvas = (soil if rng.random() < 0.4 else foliage)(rng, size)
    for _ in range(rng.integers(8, 25)):
        leaf = leaves[rng.integers(len(leaves))].image.rotate(float(rng.uniform(0, 360)), Image.BILINEAR,
                                                              expand=True)
        scale = rng.uniform(0.25, 0.7) * min(size) / max(leaf.size)
        leaf = leaf.resize((max(1, int(leaf.width * scale)), max(1, int(leaf.height * scale))), Image.BILINEAR)
        canvas.paste(leaf, (int(rng.integers(-leaf.width // 2, size[0])), int(rng.integers(-leaf.height // 2,
                                                                                              size[1]))), leaf)
    return canvas.filter(ImageFilter.GaussianBlur(float(rng.uniform(2, 6))))
