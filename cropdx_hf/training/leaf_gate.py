"""`cropdx fit-leaf-gate`: learn what a leaf looks like in the field, and what a non-leaf looks like anywhere.

The lab-only gate (Mahalanobis distance to PlantVillage photos) turned away two thirds of real field leaves: a
leaf on soil is far from a leaf on paper. This gate is discriminative and trained with many negatives (outlier
exposure, Hendrycks et al. 2019): positives are lab photos and field-style composites of training leaves, and real
photos of other plants' leaves (a leaf in natural light is a leaf: composites alone taught the gate to turn away six
of seven real leaf photos); negatives are real non-leaf photos and crops of them plus bare procedural scenes (soil,
sky, walls, hands). Every crop of a real photo passes the views' light and camera steps, so the camera tells
nothing apart. A logistic regression (sklearn) on the release's classifier features beside a generic network's
separates them.
Its threshold is the most lenient one that still rejects 99.5 % of the negatives scored out of fold (each photo's
crops held out together): negatives of unseen kinds get through two to five times as often as out-of-fold ones
(docs/field.md), so the budget is half a percent rather than one. It is measured
on lab test leaves, field-proxy leaves and non-leaf photos it never saw. The photos and the generic features are
made once for all the releases fitted in one run.

Beside it, a second regression on the classifier features alone is the gate's shortcut (`Shortcut`): its bounds are
the most extreme out-of-fold scores of the other kind, so it decides only photos clearer than any fitting photo that
needed the generic network to be told apart. The report says how many photos of each set it decides, and on how
many its decision differs from the full score's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import datasets
import numpy as np
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.preprocessing import StandardScaler

from cropdx_hf.data.loading import LeafDataset
from cropdx_hf.data.splits import split_dataset
from cropdx_hf.evaluation.predictions import predict_logits
from cropdx_hf.field.composite import FieldStyle, field_view, snapshot
from cropdx_hf.field.proxy import FieldScenes
from cropdx_hf.field.textures import TEXTURES
from cropdx_hf.gate.leaf_gate import LeafGate, Shortcut, gate_reference
from cropdx_hf.gate.network import gate_network, pooled_features
from cropdx_hf.modeling.folder import load_model_folder
from cropdx_hf.modeling.metadata import ReleaseMetadata
from cropdx_hf.photos import folder_photos, load_image, load_stored_photo, stored_photo

if TYPE_CHECKING:
    import torch

LAB_PER_CLASS, FIELD_PER_CLASS = 60, 100  # positives: lab photos and field-style views per class
CROPS_PER_PHOTO = 4  # random crops of each non-leaf photo, beside the whole photo
REAL_LEAF_CROPS = 40  # random crops of each real leaf photo: a few photos, each with many leaves in it
SCENES_PER_KIND = 80  # bare procedural scenes per kind (no foliage: a canopy is leaves)
NON_LEAF_SCENES = ("soil", "mulch", "sky", "wall", "greenhouse", "hand")
REGULARIZATION = 1e-3  # sklearn's C; stronger values accepted fewer field-proxy leaves at equal rejection
NEGATIVES_REJECTED = 0.995  # of out-of-fold negatives: the threshold rule
LEAF_PHOTOS = "leaves/fit"  # real photos of other plants' leaves in a scripts/field_photos.py folder


def photo_rows(images: Sequence[bytes | str | Path]) -> datasets.Dataset:
    """Rows the evaluation code reads (undecoded image, dummy label) for photos that belong to no class."""
    features = datasets.Features({"image": datasets.Image(decode=False), "label": datasets.Value("int64")})
    rows = [{"bytes": None, "path": str(i)} if isinstance(i, str | Path) else {"bytes": i, "path": None}
            for i in images]
    return datasets.Dataset.from_dict({"image": rows, "label": [0] * len(rows)}, features=features)


def features_of(rows: datasets.Dataset, model: torch.nn.Module | None = None) -> np.ndarray:
    """Pooled features of every row: the generic gate network's, or `model`'s (a release's classifier)."""
    return predict_logits(model if model is not None else gate_network()[0], rows, forward=pooled_features)[0]


def _per_class(rows: datasets.Dataset, per_class: int, seed: int) -> datasets.Dataset:
    rows = rows.shuffle(seed=seed)
    seen: Counter[int] = Counter()
    keep = []
    for i, label in enumerate(rows["label"]):
        seen[label] += 1
        if seen[label] <= per_class:
            keep.append(i)
    return rows.select(keep)


def positives(train: datasets.Dataset, scenes: FieldScenes, real_leaves: Sequence[Path], rng: np.random.Generator
              ) -> tuple[datasets.Dataset, np.ndarray]:
    """Lab photos, field-style views of other training photos, then real leaf photos of other plants and their
    crops; and a group id per row (one per photo)."""
    lab = _per_class(train, LAB_PER_CLASS, seed=1)
    field = _per_class(train, FIELD_PER_CLASS, seed=2)
    views = [field_view(load_stored_photo(image), scenes.train_bank, seed,
                        FieldStyle(lab_share=0.0)) for seed, image in enumerate(field["image"])]
    composites = [stored_photo(image) for image in lab["image"]] + views
    real, groups = real_photo_views(real_leaves, REAL_LEAF_CROPS, rng, first_group=len(composites))
    return photo_rows(composites + real), np.r_[np.arange(len(composites)), groups].astype(int)


def real_photo_views(photos: Sequence[Path], crops: int, rng: np.random.Generator, first_group: int = 0
                     ) -> tuple[list[bytes], list[int]]:
    """Each photo and `crops` random crops of it, snapped with the views' camera; one group id per photo, so that
    cross-validation holds a photo's crops out together."""
    views, groups = [], []
    for group, path in enumerate(photos, start=first_group):
        photo = load_image(path)
        photo.thumbnail((1600, 1600))  # wallpapers come at 4K: crops of a 1600-px copy still fill a 288-px view
        for index in range(1 + crops):
            views.append(snapshot(photo if index == 0 else _random_crop(photo, rng), rng))
        groups += [group] * (1 + crops)
    return views, groups


def _random_crop(photo: Image.Image, rng: np.random.Generator) -> Image.Image:
    share = rng.uniform(0.3, 0.8)
    width, height = int(photo.width * share), int(photo.height * share)
    left, top = rng.integers(0, photo.width - width + 1), rng.integers(0, photo.height - height + 1)
    return photo.crop((left, top, left + width, top + height))


def negatives(non_leaf: Sequence[Path], rng: np.random.Generator, scenes_per_kind: int = SCENES_PER_KIND
              ) -> tuple[datasets.Dataset, np.ndarray]:
    """Each photo and its random crops, then bare scenes; and a group id per row (one per photo or scene)."""
    images, groups = real_photo_views(non_leaf, CROPS_PER_PHOTO, rng)
    for kind in NON_LEAF_SCENES:
        for _ in range(scenes_per_kind):
            images.append(snapshot(TEXTURES[kind](rng, (288, 288)), rng))
            groups.append(len(non_leaf) + len(groups))
    return photo_rows(images), np.asarray(groups)


@dataclass
class GatePhotos:
    """What every release's gate is fitted on (`positives`, `negatives`) and measured on (`measured`). The last
    `real_field` positives are real field photos of our crops, whose out-of-fold acceptance is reported apart."""

    positives: datasets.Dataset
    positive_groups: np.ndarray
    negatives: datasets.Dataset
    negative_groups: np.ndarray
    measured: dict[str, datasets.Dataset]
    real_field: int = 0

    @classmethod
    def build(cls, data: LeafDataset, split_csv: str | Path, field_photos: str | Path, seed: int = 0,
              scenes_per_kind: int = SCENES_PER_KIND, field_data: LeafDataset | None = None) -> GatePhotos:
        photos = Path(field_photos)
        splits = split_dataset(data, split_csv)
        scenes = FieldScenes.from_folder(photos, splits["train"])
        rng = np.random.default_rng(seed)
        negative, negative_groups = negatives(folder_photos(photos / "non_leaf" / "fit"), rng, scenes_per_kind)
        positive, positive_groups = positives(splits["train"], scenes, folder_photos(photos / LEAF_PHOTOS), rng)
        real_field = 0
        if field_data is not None:  # near-duplicates share a group, so they are held out together
            groups = {g: i for i, g in enumerate(dict.fromkeys(field_data.rows["leaf_group"]))}
            positive = datasets.concatenate_datasets([positive, photo_rows(
                [stored_photo(image) for image in field_data.rows["image"]])])
            offset = int(positive_groups.max()) + 1
            positive_groups = np.r_[positive_groups, [offset + groups[g] for g in field_data.rows["leaf_group"]]]
            real_field = len(field_data.rows)
        measured = {"lab_test": splits["test"], "field_proxy_validation": scenes.proxy(splits["validation"]),
                    "field_proxy_test": scenes.proxy(splits["test"]),
                    "non_leaf_holdout": photo_rows(folder_photos(photos / "non_leaf" / "holdout")),
                    "other_plants": photo_rows(folder_photos(photos / "other_plants"))}
        return cls(positive, positive_groups, negative, negative_groups, measured, real_field)

    def sets(self) -> dict[str, datasets.Dataset]:
        """Every set with photos in it (a collection may hold no photos of other plants)."""
        every = {"positives": self.positives, "negatives": self.negatives, **self.measured}
        return {name: rows for name, rows in every.items() if len(rows)}


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


def fit_shortcut(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> Shortcut:
    """The classifier-features-only score, bounded by the out-of-fold scores of the other kind."""
    held_out = out_of_fold_scores(x, y, groups)
    scaler, model = _fit(x, y)
    weights = model.coef_[0] / scaler.scale_
    return Shortcut(weights, float(model.intercept_[0] - weights @ scaler.mean_), float(held_out[y == 0].max()),
                    float(held_out[y == 1].min()))


def fit_gate(positive: np.ndarray, negative: np.ndarray, negative_groups: np.ndarray, classifier_dims: int,
             positive_groups: np.ndarray | None = None, real_field: int = 0) -> tuple[LeafGate, dict]:
    """Rows are [classifier features, generic features]; the first `classifier_dims` columns are the former.
    Rows of one group (a photo and its crops) are held out together; without groups, each positive is its own.
    The last `real_field` positives are real field photos: the report gives their out-of-fold acceptance apart."""
    x = np.concatenate([positive, negative])
    y = np.r_[np.ones(len(positive)), np.zeros(len(negative))]
    own = np.arange(len(positive)) if positive_groups is None else np.asarray(positive_groups)
    groups = np.r_[-1 - own, negative_groups]
    held_out = out_of_fold_scores(x, y, groups)
    threshold = float(np.quantile(held_out[y == 0], NEGATIVES_REJECTED))
    scaler, model = _fit(x, y)
    gate = LeafGate(scaler.mean_, scaler.scale_, model.coef_[0], float(model.intercept_[0]), threshold,
                    classifier_dims, fit_shortcut(x[:, :classifier_dims], y, groups))
    report = {"positives": int(len(positive)), "negatives": int(len(negative)),
              "out_of_fold_negatives_rejected": float(np.mean(held_out[y == 0] < threshold)),
              "out_of_fold_positives_accepted": float(np.mean(held_out[y == 1] >= threshold))}
    if real_field:
        field = held_out[len(positive) - real_field:len(positive)]
        report |= {"real_field_photos": real_field,
                   "real_field_out_of_fold_turned_away": float(np.mean(field < threshold))}
    return gate, report


def fit_leaf_gates(data: LeafDataset, split_csv: str | Path, field_photos: str | Path,
                   model_dirs: Sequence[str | Path], seed: int = 0, scenes_per_kind: int = SCENES_PER_KIND,
                   field_data: LeafDataset | None = None) -> dict[str, dict[str, Any]]:
    """Fit, measure and save each release's gate (into its folder, named in its config) on one set of photos;
    with `field_data`, real field photos of our crops are positives too."""
    photos = GatePhotos.build(data, split_csv, field_photos, seed, scenes_per_kind, field_data)
    generic = {name: features_of(rows) for name, rows in photos.sets().items()}
    return {Path(model_dir).name: _fit_release_gate(Path(model_dir), photos, generic) for model_dir in model_dirs}


def shortcut_effect(gate: LeafGate, rows: np.ndarray) -> dict[str, float | int]:
    """How many photos of a set the shortcut decides, and on how many of them the full score would differ."""
    dims = gate.classifier_dims
    leaf, decided = gate.shortcut.decide(rows[:, :dims])
    full = gate.is_leaf(rows[:, :dims], rows[:, dims:])
    return {"decided": float(decided.mean()), "differs_from_full_score": int((leaf != full)[decided].sum())}


def _fit_release_gate(model_dir: Path, photos: GatePhotos, generic: dict[str, np.ndarray]) -> dict[str, Any]:
    model = load_model_folder(model_dir)[0]
    features = {name: np.concatenate([features_of(rows, model), generic[name]], axis=1)
                for name, rows in photos.sets().items()}
    classifier_dims = features["positives"].shape[1] - generic["positives"].shape[1]
    gate, fitted = fit_gate(features["positives"], features["negatives"], photos.negative_groups, classifier_dims,
                            photos.positive_groups, photos.real_field)

    def accepted(name: str) -> float:
        if name not in features:
            return float("nan")
        rows, dims = features[name], gate.classifier_dims
        return float(gate.decide(rows[:, :dims], lambda undecided: rows[undecided, dims:]).mean())

    report = {
        "method": f"logistic regression (C {REGULARIZATION:g}) on the classifier's pooled features and a bare "
                  f"ImageNet {gate.backbone}'s at {gate.image_size} px; threshold rejects "
                  f"{NEGATIVES_REJECTED:.1%} of out-of-fold negatives; the generic network runs only for photos a "
                  "score on the classifier's features alone leaves undecided",
        "gate_backbone": gate.backbone, "gate_image_size": gate.image_size, **fitted, "threshold": gate.threshold,
        "lab_test_turned_away": 1 - accepted("lab_test"), "lab_test_photos": len(photos.measured["lab_test"]),
        "field_proxy_validation_turned_away": 1 - accepted("field_proxy_validation"),
        "field_proxy_test_turned_away": 1 - accepted("field_proxy_test"),
        "non_leaf_holdout_photos": len(photos.measured["non_leaf_holdout"]),
        "non_leaf_holdout_rejected": 1 - accepted("non_leaf_holdout"),
        "other_plant_photos": len(photos.measured["other_plants"]), "other_plants_accepted": accepted("other_plants"),
        "shortcut": {name: shortcut_effect(gate, rows) for name, rows in features.items()},
    }
    gate.save(model_dir)
    ReleaseMetadata.update(model_dir, leaf_gate=gate_reference(model_dir, report))
    return report
