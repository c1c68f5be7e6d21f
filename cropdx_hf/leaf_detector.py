"""Is this photo a tomato, potato or pepper leaf at all? Distance to the training classes in feature space.

Softmax confidence cannot answer it: a fine-tuned classifier calls a cat "Healthy Tomato, 97 %". Here the
classifier's own pooled features are projected with PCA (fitted on training photos), and a photo's score is
its Mahalanobis distance to the nearest class mean under a shared, shrunk covariance (Lee et al. 2018). The
threshold is a high quantile of validation scores, so a known small share of real leaves is turned away.
sklearn supplies PCA and Ledoit-Wolf; only the scoring is ours.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file, save_file
from sklearn.covariance import LedoitWolf
from sklearn.decomposition import PCA

DETECTOR_FILE = "leaf_detector.safetensors"
COMPONENTS = 64
QUANTILE = 0.99  # share of validation leaves accepted


@torch.inference_mode()
def pooled_features(model: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """The classifier's penultimate features (global-pooled, before the linear head)."""
    return model.forward_head(model.forward_features(pixels), pre_logits=True)


class LeafDetector:
    def __init__(self, mean: np.ndarray, components: np.ndarray, class_means: np.ndarray, precision: np.ndarray,
                 threshold: float):
        self.mean, self.components = mean, components
        self.class_means, self.precision, self.threshold = class_means, precision, float(threshold)

    @classmethod
    def fit(cls, features: np.ndarray, labels: np.ndarray, validation: np.ndarray,
            components: int = COMPONENTS, quantile: float = QUANTILE) -> LeafDetector:
        pca = PCA(n_components=min(components, features.shape[0] - 1, features.shape[1]), random_state=0)
        projected = pca.fit_transform(features)
        classes = np.unique(labels)
        class_means = np.stack([projected[labels == c].mean(axis=0) for c in classes])
        centred = projected - class_means[np.searchsorted(classes, labels)]
        precision = LedoitWolf().fit(centred).precision_
        detector = cls(pca.mean_, pca.components_, class_means, precision, threshold=np.inf)
        detector.threshold = float(np.quantile(detector.score(validation), quantile))
        return detector

    def score(self, features: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance to the nearest class mean; larger means less leaf-like."""
        z = (np.asarray(features, dtype=np.float64) - self.mean) @ self.components.T
        diff = z[:, None, :] - self.class_means[None, :, :]
        return np.einsum("nci,ij,ncj->nc", diff, self.precision, diff).min(axis=1)

    def is_leaf(self, features: np.ndarray) -> np.ndarray:
        return self.score(features) <= self.threshold

    def save(self, model_dir: str | Path) -> Path:
        path = Path(model_dir) / DETECTOR_FILE
        tensors = {"mean": self.mean, "components": self.components, "class_means": self.class_means,
                   "precision": self.precision, "threshold": np.array([self.threshold])}
        save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}, str(path))
        return path

    @classmethod
    def load(cls, model_dir: str | Path) -> LeafDetector | None:
        path = Path(model_dir) / DETECTOR_FILE
        if not path.is_file():
            return None
        t = {k: v.astype(np.float64) for k, v in load_file(str(path)).items()}
        return cls(t["mean"], t["components"], t["class_means"], t["precision"], float(t["threshold"][0]))


def _features(model: torch.nn.Module, rows) -> tuple[np.ndarray, np.ndarray]:
    from .evaluation import predict_logits

    return predict_logits(model, rows, forward=pooled_features)


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
    detector = LeafDetector.fit(train_x, train_y, val_x)
    test_x, _ = _features(model, select_split(dataset, split_csv, "test"))
    report = {"method": f"Mahalanobis distance to the nearest class mean, PCA {detector.components.shape[0]}",
              "fit_photos": len(train_y), "threshold_quantile": QUANTILE, "threshold": detector.threshold,
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
