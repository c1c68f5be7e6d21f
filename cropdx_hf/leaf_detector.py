"""Is this photo a tomato, potato or pepper leaf at all? Distance to the training classes in feature space.

Softmax confidence cannot answer it: a fine-tuned classifier calls a cat "Healthy Tomato, 97 %". Here two
feature levels of the classifier itself (pooled activations of a middle block stage, and the pooled
penultimate features) are each projected with PCA fitted on training photos; a photo's score at each level
is its Mahalanobis distance to the nearest class mean under a shared, shrunk covariance (Lee et al. 2018).
Each level's threshold is a high quantile of validation scores; a leaf must pass both. sklearn supplies PCA
and Ledoit-Wolf; only the scoring is ours.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file, save_file
from sklearn.covariance import LedoitWolf
from sklearn.decomposition import PCA

DETECTOR_FILE = "leaf_detector.safetensors"
MID_STAGE = -3  # the block stage whose pooled output is the first level (measured best of stages 2, 4)
COMPONENTS = (32, 64)  # PCA dimensions per level
QUANTILE = 0.99  # share of validation leaves each level accepts


@torch.inference_mode()
def forward_levels(model: torch.nn.Module, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(detector features, penultimate features) in one pass through a timm EfficientNet-family model."""
    x = model.bn1(model.conv_stem(pixels))
    mid = None
    for i, stage in enumerate(model.blocks):
        x = stage(x)
        if i == len(model.blocks) + MID_STAGE:
            mid = x.mean(dim=(2, 3))
    pooled = model.forward_head(model.bn2(model.conv_head(x)), pre_logits=True)
    return torch.cat([mid, pooled], dim=1), pooled


@dataclass
class Level:
    start: int
    stop: int
    mean: np.ndarray
    components: np.ndarray
    class_means: np.ndarray
    precision: np.ndarray
    threshold: float = np.inf

    @classmethod
    def fit(cls, features: np.ndarray, labels: np.ndarray, start: int, stop: int, components: int) -> Level:
        x = features[:, start:stop]
        pca = PCA(n_components=min(components, x.shape[0] - 1, x.shape[1]), random_state=0)
        projected = pca.fit_transform(x)
        classes = np.unique(labels)
        class_means = np.stack([projected[labels == c].mean(axis=0) for c in classes])
        precision = LedoitWolf().fit(projected - class_means[np.searchsorted(classes, labels)]).precision_
        return cls(start, stop, pca.mean_, pca.components_, class_means, precision)

    def score(self, features: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance to the nearest class mean; larger means less leaf-like."""
        z = (np.asarray(features[:, self.start:self.stop], dtype=np.float64) - self.mean) @ self.components.T
        diff = z[:, None, :] - self.class_means[None, :, :]
        return np.einsum("nci,ij,ncj->nc", diff, self.precision, diff).min(axis=1)


class LeafDetector:
    def __init__(self, levels: list[Level]):
        self.levels = levels

    @classmethod
    def fit(cls, features: np.ndarray, labels: np.ndarray, validation: np.ndarray, bounds: list[int],
            components: tuple[int, ...] = COMPONENTS, quantile: float = QUANTILE) -> LeafDetector:
        """`bounds` split the feature columns into levels, e.g. [0, 112, 1392]."""
        levels = [Level.fit(features, labels, a, b, k) for a, b, k in zip(bounds[:-1], bounds[1:], components,
                                                                            strict=True)]
        for level in levels:
            level.threshold = float(np.quantile(level.score(validation), quantile))
        return cls(levels)

    def is_leaf(self, features: np.ndarray) -> np.ndarray:
        return np.all([level.score(features) <= level.threshold for level in self.levels], axis=0)

    def save(self, model_dir: str | Path) -> Path:
        path = Path(model_dir) / DETECTOR_FILE
        tensors = {}
        for i, level in enumerate(self.levels):
            for name in ("mean", "components", "class_means", "precision"):
                tensors[f"level{i}.{name}"] = np.ascontiguousarray(getattr(level, name), dtype=np.float32)
            tensors[f"level{i}.bounds"] = np.array([level.start, level.stop], dtype=np.float32)
            tensors[f"level{i}.threshold"] = np.array([level.threshold], dtype=np.float32)
        save_file(tensors, str(path))
        return path

    @classmethod
    def load(cls, model_dir: str | Path) -> LeafDetector | None:
        path = Path(model_dir) / DETECTOR_FILE
        if not path.is_file():
            return None
        t = {k: v.astype(np.float64) for k, v in load_file(str(path)).items()}
        count = len({k.split(".")[0] for k in t})
        return cls([Level(int(t[f"level{i}.bounds"][0]), int(t[f"level{i}.bounds"][1]), t[f"level{i}.mean"],
                          t[f"level{i}.components"], t[f"level{i}.class_means"], t[f"level{i}.precision"],
                          float(t[f"level{i}.threshold"][0])) for i in range(count)])


def _features(model: torch.nn.Module, rows) -> tuple[np.ndarray, np.ndarray]:
    from .evaluation import predict_logits

    return predict_logits(model, rows, forward=lambda m, x: forward_levels(m, x)[0])


def _per_class(rows, per_class: int, seed: int = 42):
    rows = rows.shuffle(seed=seed)
    seen: dict[int, int] = {}
    keep = []
    for i, label in enumerate(rows["label"]):
        if seen.get(label, 0) < per_class:
            seen[label] = seen.get(label, 0) + 1
            keep.append(i)
    return rows.select(keep)


def fit_for_model(model_dir: str | Path, data, non_leaf_dir: str | Path | None = None,
                  per_class: int = 100) -> dict:
    """Fit on training photos, set the threshold on validation, measure on test and on non-leaf photos."""
    from .data import load_leaf_dataset
    from .evaluation import select_split
    from .model_config import update_metadata
    from .model_folder import load_model_folder

    model, _ = load_model_folder(model_dir)
    dataset = load_leaf_dataset(data)
    split_csv = Path(model_dir) / "split.csv"
    train_x, train_y = _features(model, _per_class(select_split(dataset, split_csv, "train"), per_class))
    val_x, _ = _features(model, select_split(dataset, split_csv, "validation"))
    mid = model.blocks[MID_STAGE][-1].conv_pwl.out_channels
    detector = LeafDetector.fit(train_x, train_y, val_x, bounds=[0, mid, train_x.shape[1]])
    test_x, _ = _features(model, select_split(dataset, split_csv, "test"))
    stage = len(model.blocks) + MID_STAGE
    report = {"method": "Mahalanobis distance to the nearest class mean at two feature levels (pooled block "
                        f"stage {stage}, PCA {COMPONENTS[0]}; penultimate, PCA {COMPONENTS[1]})",
              "fit_photos": len(train_y), "threshold_quantile": QUANTILE,
              "thresholds": [level.threshold for level in detector.levels],
              "test_leaves": len(test_x), "test_leaves_rejected": float(1 - detector.is_leaf(test_x).mean())}
    if non_leaf_dir:
        non_leaf = load_non_leaf(non_leaf_dir)
        if len(non_leaf):
            other_x, _ = _features(model, non_leaf)
            report.update(non_leaf_photos=len(other_x), non_leaf_rejected=float(1 - detector.is_leaf(other_x).mean()))
    detector.save(model_dir)
    update_metadata(model_dir, {"leaf_detector": report})
    return report


def load_non_leaf(folder: str | Path):
    """Every image under `folder` as rows with a dummy label (they belong to no class)."""
    import datasets

    files = sorted(str(p) for p in Path(folder).rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    return datasets.Dataset.from_dict({"image": [{"path": f, "bytes": None} for f in files],
                                       "label": [0] * len(files)})
