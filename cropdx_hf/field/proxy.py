"""The field-proxy set: each photo of a split replaced by its one seeded field-style view.

The views use backgrounds that training never sees (`backgrounds/proxy`) and a seed derived from each photo's
hash, so every machine with the same photos builds the same set. `datasets` caches it under a fingerprint of
the rows, the backgrounds and the seed. It is a proxy: it shares the compositing recipe with training, so it
flatters a model trained on composites; read it beside the held-back field figures, not instead of them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import datasets

from cropdx_hf.field.backgrounds import BackgroundBank
from cropdx_hf.field.composite import FieldStyle, field_view
from cropdx_hf.field.masks import cut_out_leaf
from cropdx_hf.photos import load_stored_photo

PROXY_SEED = 20261202
PROXY_VERSION = 3  # part of the cache fingerprint: raise it whenever the views a seed gives change
TRAIN_POOL, PROXY_POOL = "train", "proxy"
COLLAGE_LEAVES = 64  # training photos whose leaves make the out-of-focus collages of a bank
# Every proxy photo is a field scene, smaller and more cluttered than the average training view (the lab-only
# releases score about as badly on it as on real field photos: docs/field.md). It is metered as a phone meters, then
# exposed within about +-0.5 EV, and blurred less than a Gaussian sigma of 1.2 px at 224 px: a photo darker,
# brighter or blurrier than that is one the quality check asks to retake.
PROXY_STYLE = FieldStyle(lab_share=0.0, leaf_fill=(0.08, 0.7), extra_leaves=0.7, blur=0.5, defocus=(0.5, 1.5),
                         motion=(3, 6), exposure=(0.85, 1.17), auto_exposure=True)


def background_bank(photo_dir: str | Path, pool: str, train_rows: datasets.Dataset) -> BackgroundBank:
    """The `pool` photos of a `scripts/field_photos.py` folder, with collage leaves from training photos (the
    two pools draw different ones)."""
    picked = train_rows.shuffle(seed={TRAIN_POOL: 0, PROXY_POOL: 1}[pool]).select(
        range(min(COLLAGE_LEAVES, len(train_rows))))
    leaves = [cut for image in picked["image"] if (cut := cut_out_leaf(_photo(image))) is not None]
    bank = BackgroundBank.from_folder(Path(photo_dir) / "backgrounds" / pool, leaves)
    bank.fingerprint += f", collage leaves {hashlib.sha256(''.join(picked['sha256']).encode()).hexdigest()[:16]}"
    return bank


@dataclass
class FieldScenes:
    """The two background banks of a training run: one for training views, one for the proxy sets."""

    train_bank: BackgroundBank
    proxy_bank: BackgroundBank

    @classmethod
    def from_folder(cls, photo_dir: str | Path, train_rows: datasets.Dataset) -> FieldScenes:
        return cls(background_bank(photo_dir, TRAIN_POOL, train_rows), background_bank(photo_dir, PROXY_POOL,
                                                                                         train_rows))

    def proxy(self, rows: datasets.Dataset) -> datasets.Dataset:
        return field_proxy(rows, self.proxy_bank)


def field_proxy(rows: datasets.Dataset, bank: BackgroundBank, seed: int = PROXY_SEED) -> datasets.Dataset:
    """`rows` with every image replaced by its deterministic field view (JPEG bytes); labels unchanged."""

    def view(image: dict, sha256: str) -> dict:
        return {"image": {"bytes": field_view(_photo(image), bank, seed + int(sha256[:12], 16), PROXY_STYLE),
                          "path": None}}

    recipe = f"{rows._fingerprint}|{bank.fingerprint}|{seed}|{PROXY_STYLE}|{PROXY_VERSION}"
    fingerprint = hashlib.sha256(recipe.encode()).hexdigest()
    return rows.map(view, input_columns=["image", "sha256"], new_fingerprint=fingerprint[:32],
                    desc="field-proxy views")


def _photo(image: dict):
    return load_stored_photo(image)
