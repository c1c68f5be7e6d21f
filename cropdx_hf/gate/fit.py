"""`cropdx fit-leaf-gate`: learn what a leaf looks like in the field, and what a non-leaf looks like anywhere.

The lab-only gate (Mahalanobis distance to PlantVillage photos) turned away two thirds of real field leaves: a
leaf on soil is far from a leaf on paper. This gate is discriminative and trained with many negatives (outlier
exposure, Hendrycks et al. 2019): positives are lab photos and field-style composites of training leaves,
negatives are real non-leaf photos and crops of them plus bare procedural scenes (soil, sky, walls, hands). A
logistic regression on the generic network's pooled features (sklearn) separates them. Its threshold is the
most lenient one that still rejects 99 % of the negatives scored out of fold (each photo's crops held out
together), so it accepts as many field leaves as a 1 % false-accept budget allows. It is measured on lab test
leaves, field-proxy leaves and non-leaf photos it never saw.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.preprocessing import StandardScaler

from cropdx_hf.data.loading import LeafDataset
from cropdx_hf.data.splits import split_dataset
from cropdx_hf.evaluation.predictions import predict_logits
from cropdx_hf.field.composite import FieldStyle, field_view
from cropdx_hf.field.proxy import FieldScenes
from cropdx_hf.field.textures import TEXTURES
from cropdx_hf.gate.leaf_gate import GATE_BACKBONE, GATE_FILE, LeafGate, gate_reference
from cropdx_hf.gate.network import gate_network, pooled_features
from cropdx_hf.inference.images import load_image
from cropdx_hf.modeling.metadata import ReleaseMetadata

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
LAB_PER_CLASS, FIELD_PER_CLASS = 60, 100  # positives: lab photos and field-style views per class
CROPS_PER_PHOTO = 4  # random crops of each non-leaf photo, beside the whole photo
SCENES_PER_KIND = 80  # bare procedural scenes per kind (no foliage: a canopy is leaves)
NON_LEAF_SCENES = ("soil", "mulch", "sky", "wall", "greenhouse", "hand")
REGULARIZATION = 1e-3  # sklearn's C; stronger values accepted fewer field-proxy leaves at equal rejection
NEGATIVES_REJECTED = 0.99  # of out-of-fold negatives: the threshold rule


def photo_rows(images: Sequence[bytes | str | Path]) -> datasets.Dataset:
    """Rows the evaluation code reads (undecoded image, dummy label) for photos that belong to no class."""
    features = datasets.Features({"image": datasets.Image(decode=False), "label": datasets.Value("int64")})
    rows = [{"bytes": None, "path": str(i)} if isinstance(i, str | Path) else {"bytes": i, "path": None}
            for i in images]
    return datasets.Dataset.from_dict({"image": rows, "label": [0] * len(rows)}, features=features)


def folder_photos(folder: str | Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES)


def features_of(rows: datasets.Dataset) -> np.ndarray:
    return predict_logits(gate_network(GATE_BACKBONE)[0], rows, forward=pooled_features)[0]


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _per_class(rows: datasets.Dataset, per_class: int, seed: int) -> datasets.Dataset:
    rows = rows.shuffle(seed=seed)
    seen: Counter[int] = Counter()
    keep = []
    for i, label in enumerate(rows["label"]):
        seen[label] += 1
        if seen[label] <= per_class:
            keep.append(i)
    return rows.select(keep)


def positives(train: datasets.Dataset, scenes: FieldScenes) -> np.ndarray:
    lab = _per_class(train, LAB_PER_CLASS, seed=1)
    field = _per_class(train, FIELD_PER_CLASS, seed=2)
    views = [field_view(load_image(image.get("bytes") or image["path"]), scenes.train_bank, seed,
                        FieldStyle(lab_share=0.0)) for seed, image in enumerate(field["image"])]
    return np.concatenate([features_of(lab), features_of(photo_rows(views))])


def negatives(non_leaf: Sequence[Path], rng: np.random.Generator, scenes_per_kind: int = SCENES_PER_KIND
              ) -> tuple[np.ndarray, np.ndarray]:
    """Features of each photo and its random crops, then of bare scenes; and a group id per row (one per photo
    or scene) so that cross-validation holds a photo's crops out together."""
    images, groups = [], []
    for group, path in enumerate(non_leaf):
        photo = load_image(path)
        images.append(_jpeg(photo))
        for _ in range(CROPS_PER_PHOTO):
            share = rng.uniform(0.3, 0.8)
            width, height = int(photo.width * share), int(photo.height * share)
            left, top = rng.integers(0, photo.width - width + 1), rng.integers(0, photo.height - height + 1)
            images.append(_jpeg(photo.crop((left, top, left + width, top + height))))
        groups += [group] * (1 + CROPS_PER_PHOTO)
    for kind in NON_LEAF_SCENES:
        for _ in range(scenes_per_kind):
            images.append(_jpeg(TEXTURES[kind](rng, (288, 288))))
            groups.append(len(non_leaf) + len(groups))
    return features_of(photo_rows(images)), np.asarray(groups)


def _fit(x: np.ndarray, y: np.ndarray) -> tuple[StandardScaler, LogisticRegression]:
    scaler = StandardScaler().fit(x)
    model = LogisticRegression(C=REGULARIZATION, max_iter=5000, class_weight="balanced").fit(scaler.transform(x), y)
    return scaler, model


def out_of_fold_scores(x: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: int = 5) -> np.ndarray:
    scores = np.zeros(len(y))
    for train, held_out in GroupKFold(folds).split(x, y, groups):
        scaler, model = _fit(x[train], y[train])
        scores[held_out] = model.decision_function(scaler.transform(x[held_out]))
    return scores


def fit_gate(positive: np.ndarray, negative: np.ndarray, negative_groups: np.ndarray) -> tuple[LeafGate, dict]:
    x = np.concatenate([positive, negative])
    y = np.r_[np.ones(len(positive)), np.zeros(len(negative))]
    groups = np.r_[-1 - np.arange(len(positive)), negative_groups]
    held_out = out_of_fold_scores(x, y, groups)
    threshold = float(np.quantile(held_out[y == 0], NEGATIVES_REJECTED))
    scaler, model = _fit(x, y)
    gate = LeafGate(scaler.mean_, scaler.scale_, model.coef_[0], float(model.intercept_[0]), threshold)
    return gate, {"positives": int(len(positive)), "negatives": int(len(negative)),
                  "out_of_fold_negatives_rejected": float(np.mean(held_out[y == 0] < threshold)),
                  "out_of_fold_positives_accepted": float(np.mean(held_out[y == 1] >= threshold))}


def fit_leaf_gate(data: LeafDataset, split_csv: str | Path, field_photos: str | Path, out: str | Path,
                  seed: int = 0, scenes_per_kind: int = SCENES_PER_KIND) -> dict[str, Any]:
    """Fit on the training split and `field_photos` (scripts/field_photos.py), measure, save to `out`."""
    photos = Path(field_photos)
    splits = split_dataset(data, split_csv)
    scenes = FieldScenes.from_folder(photos, splits["train"])
    negative, groups = negatives(folder_photos(photos / "non_leaf" / "fit"), np.random.default_rng(seed),
                                 scenes_per_kind)
    gate, fitted = fit_gate(positives(splits["train"], scenes), negative, groups)

    def accepted(rows: datasets.Dataset) -> float:
        return float(gate.is_leaf(features_of(rows)).mean()) if len(rows) else float("nan")

    holdout, other_plants = folder_photos(photos / "non_leaf" / "holdout"), folder_photos(photos / "other_plants")
    report = {
        "method": f"logistic regression (C {REGULARIZATION:g}) on bare ImageNet {gate.backbone} pooled features; "
                  f"threshold rejects {NEGATIVES_REJECTED:.0%} of out-of-fold negatives",
        "gate_backbone": gate.backbone, **fitted, "threshold": gate.threshold,
        "lab_test_turned_away": 1 - accepted(splits["test"]), "lab_test_photos": len(splits["test"]),
        "field_proxy_validation_turned_away": 1 - accepted(scenes.proxy(splits["validation"])),
        "field_proxy_test_turned_away": 1 - accepted(scenes.proxy(splits["test"])),
        "non_leaf_holdout_photos": len(holdout), "non_leaf_holdout_rejected": 1 - accepted(photo_rows(holdout)),
        "other_plant_photos": len(other_plants), "other_plants_accepted": accepted(photo_rows(other_plants)),
    }
    gate.save(out)
    (Path(out) / "gate.json").write_text(json.dumps(report, indent=2))
    return report


def attach_gate(model_dirs: Sequence[str | Path], gate_dir: str | Path, report: dict[str, Any]) -> None:
    """Name the gate in each model's config (path, hash and its measured report)."""
    for model_dir in model_dirs:
        ReleaseMetadata.update(model_dir, leaf_gate={**gate_reference(model_dir, Path(gate_dir) / GATE_FILE),
                                                     "report": report})
