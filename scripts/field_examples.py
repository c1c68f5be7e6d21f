"""Pictures and counts that let a person check the field-style data by eye.

Writes to OUT (default reports/field):
- masks.png: 90 dev-pool photos (6 per class) beside their leaf masks (background tinted magenta);
- mask_stats.json: per class, the share of photos without a usable mask and the median leaf area;
- training_views.png: 48 training views as `cropdx train --field_photos` draws them;
- proxy_views.png: 48 field-proxy views (validation split, the seeded set every release is scored on).

    python scripts/field_examples.py --data ../shared/data/plantvillage --field-photos field_photos
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cropdx_hf.data.loading import load_leaf_dataset
from cropdx_hf.data.splits import split_dataset
from cropdx_hf.field.composite import FieldStyle, FieldViews
from cropdx_hf.field.masks import WORK_SIZE, leaf_mask
from cropdx_hf.field.proxy import FieldScenes
from cropdx_hf.photos import load_stored_photo

SPLIT_CSV = Path(__file__).resolve().parents[1] / "splits" / "plantvillage.csv"
TILE = 128


def grid(images: list[Image.Image], columns: int) -> Image.Image:
    rows = (len(images) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * TILE, rows * TILE), (255, 255, 255))
    for i, image in enumerate(images):
        image = image.copy()
        image.thumbnail((TILE, TILE))
        sheet.paste(image, ((i % columns) * TILE, (i // columns) * TILE))
    return sheet


def tinted(photo: Image.Image, mask: np.ndarray | None) -> Image.Image:
    pixels = np.asarray(photo.resize((WORK_SIZE, WORK_SIZE)), np.float32)
    if mask is not None:
        pixels[~mask] = pixels[~mask] * 0.25 + np.array([255, 0, 255]) * 0.75
    return Image.fromarray(pixels.astype(np.uint8))


def photo(image: dict) -> Image.Image:
    return load_stored_photo(image)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--field-photos", required=True, type=Path)
    parser.add_argument("--out", type=Path, default=Path("reports/field"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    data = load_leaf_dataset(args.data)
    splits = split_dataset(data, SPLIT_CSV)
    rng = np.random.default_rng(0)
    pairs, stats = [], {}
    for label, name in enumerate(data.class_names):
        rows = data.rows.filter(lambda y, label=label: y == label, input_columns="label")
        masks = [leaf_mask(photo(image)) for image in rows["image"]]
        areas = [m.mean() for m in masks if m is not None]
        stats[name] = {"photos": len(masks), "without_mask": sum(m is None for m in masks),
                       "median_leaf_area": round(float(np.median(areas)), 3) if areas else None}
        for i in rng.choice(len(masks), 6, replace=False):
            shown = photo(rows[int(i)]["image"])
            pairs += [shown.resize((WORK_SIZE, WORK_SIZE)), tinted(shown, masks[int(i)])]
    grid(pairs, 12).save(args.out / "masks.png")
    (args.out / "mask_stats.json").write_text(json.dumps(stats, indent=2))
    scenes = FieldScenes.from_folder(args.field_photos, splits["train"])
    torch.manual_seed(0)
    views = FieldViews(scenes.train_bank, FieldStyle())
    train = splits["train"].shuffle(seed=0).select(range(48))
    grid([views(photo(image)) for image in train["image"]], 8).save(args.out / "training_views.png")
    proxy = scenes.proxy(splits["validation"]).shuffle(seed=0).select(range(48))
    grid([Image.open(io.BytesIO(image["bytes"])) for image in proxy["image"]], 8).save(args.out / "proxy_views.png")
    print(f"wrote masks.png, mask_stats.json, training_views.png and proxy_views.png to {args.out}")


if __name__ == "__main__":
    main()
