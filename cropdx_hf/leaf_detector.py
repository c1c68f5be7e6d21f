"""Is this photo a tomato, potato or pepper leaf at all? Distance to the training photos in the feature space of
a generic ImageNet network.

Softmax confidence cannot answer it: a fine-tuned classifier calls a cat "Healthy Tomato, 97 %". The
classifier's own features answer it poorly too, because fine-tuning folds non-leaves onto the leaf classes:
on 40 real non-leaf photos, two feature levels of the fine-tuned efficientnet_lite0 rejected 85 % while the
pooled features of a bare ImageNet mobilenetv2_100 rejected all 40, both turning away about 1 % of test leaves.
So the gate is that bare network (the smallest with offline weights), whatever the release: a photo's score is
its Mahalanobis distance to the nearest class mean after PCA, under a shared, shrunk covariance (Lee et al.
2018); the threshold is a high quantile of validation scores. sklearn supplies PCA and Ledoit-Wolf; only the
scoring is ours.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.numpy import save_file
from sklearn.covariance import LedoitWolf
from sklearn.decomposition import PCA

from .errors import ModelFolderError
from .transforms import channels_last, data_config, eval_transform

DETECTOR_FILE = "leaf_detector.safetensors"
GATE_BACKBONE = "mobilenetv2_100"
COMPONENTS = 128  # PCA dimensions of the 1280 pooled features
QUANTILE = 0.995  # share of validation leaves accepted
FIELDS = ("mean", "components", "class_means", "precision", "threshold")


@functools.cache
def gate_network(name: str) -> tuple[torch.nn.Module, Callable[[Image.Image], torch.Tensor]]:
    """The bare ImageNet network and its eval transform, built once per process and shared by all releases."""
    from .backbones import create_backbone

    model = create_backbone(name).eval()
    return model, eval_transform(data_config(model))


def pooled_features(model: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    return model.forward_head(model.forward_features(channels_last(pixels)), pre_logits=True)


@dataclass
class LeafDetector:
    mean: np.ndarray
    components: np.ndarray
    class_means: np.ndarray
    precision: np.ndarray
    threshold: float = np.inf
    backbone: str = GATE_BACKBONE

    @classmethod
    def fit(cls, features: np.ndarray, labels: np.ndarray, validation: np.ndarray, components: int = COMPONENTS,
            quantile: float = QUANTILE, backbone: str = GATE_BACKBONE) -> LeafDetector:
        pca = PCA(n_components=min(components, features.shape[0] - 1, features.shape[1]), random_state=0)
        projected = pca.fit_transform(features)
        classes = np.unique(labels)
        class_means = np.stack([projected[labels == c].mean(axis=0) for c in classes])
        precision = LedoitWolf().fit(projected - class_means[np.searchsorted(classes, labels)]).precision_
        detector = cls(pca.mean_, pca.components_, class_means, precision, backbone=backbone)
        detector.threshold = float(np.quantile(detector.score(validation), quantile))
        return detector

    def score(self, features: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance to the nearest class mean; larger means less leaf-like."""
        z = (np.asarray(features, dtype=np.float64) - self.mean) @ self.components.T
        diff = z[:, None, :] - self.class_means[None, :, :]
        return np.einsum("nci,ij,ncj->nc", diff, self.precision, diff).min(axis=1)

    def is_leaf(self, features: np.ndarray) -> np.ndarray:
        return self.score(features) <= self.threshold

    @torch.inference_mode()
    def check(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Which of these (already decoded) photos look like leaves."""
        model, transform = gate_network(self.backbone)
        pixels = torch.stack([transform(image) for image in images])
        return self.is_leaf(pooled_features(model, pixels).numpy())

    def save(self, model_dir: str | Path) -> Path:
        path = Path(model_dir) / DETECTOR_FILE
        tensors = {name: np.ascontiguousarray(np.atleast_1d(getattr(self, name)), dtype=np.float32)
                   for name in FIELDS}
        save_file(tensors, str(path), metadata={"backbone": self.backbone})
        return path

    @classmethod
    def load(cls, model_dir: str | Path) -> LeafDetector | None:
        path = Path(model_dir) / DETECTOR_FILE
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="numpy") as f:
                t = {name: f.get_tensor(name).astype(np.float64) for name in FIELDS}
                backbone = (f.metadata() or {}).get("backbone", GATE_BACKBONE)
        except Exception as err:  # safetensors raises its own error types for damaged files, KeyError for old ones
            raise ModelFolderError(f"{path}: not a readable leaf detector ({err}); refit it with "
                                   "`cropdx fit-leaf-detector`") from err
        return cls(t["mean"], t["components"], t["class_means"], t["precision"], float(t["threshold"][0]), backbone)


def _features(rows, backbone: str = GATE_BACKBONE) -> tuple[np.ndarray, np.ndarray]:
    from .evaluation import predict_logits

    return predict_logits(gate_network(backbone)[0], rows, forward=pooled_features)


def _rejected_share(detector: LeafDetector, rows) -> float:
    return float(1 - detector.is_leaf(_features(rows)[0]).mean())


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
    """Fit on the model's training photos, set the threshold on validation, measure on test and non-leaf photos."""
    from .data import load_leaf_dataset
    from .evaluation import select_split
    from .model_config import update_metadata

    dataset = load_leaf_dataset(data)
    split_csv = Path(model_dir) / "split.csv"
    train_x, train_y = _features(_per_class(select_split(dataset, split_csv, "train"), per_class))
    val_x, _ = _features(select_split(dataset, split_csv, "validation"))
    detector = LeafDetector.fit(train_x, train_y, val_x)
    report = {"method": f"Mahalanobis distance to the nearest class mean of bare ImageNet {detector.backbone} "
                        f"pooled features (PCA {len(detector.components)})",
              "gate_backbone": detector.backbone, "fit_photos": len(train_y), "threshold_quantile": QUANTILE,
              "threshold": detector.threshold}
    test = select_split(dataset, split_csv, "test")
    if len(test):
        report.update(test_leaves=len(test), test_leaves_rejected=_rejected_share(detector, test))
    if non_leaf_dir and len(non_leaf := load_non_leaf(non_leaf_dir)):
        report.update(non_leaf_photos=len(non_leaf), non_leaf_rejected=_rejected_share(detector, non_leaf))
    detector.save(model_dir)
    update_metadata(model_dir, {"leaf_detector": report})
    return report


def load_non_leaf(folder: str | Path):
    """Every image under `folder` as rows with a dummy label (they belong to no class)."""
    import datasets

    files = sorted(str(p) for p in Path(folder).rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    return datasets.Dataset.from_dict({"image": [{"path": f, "bytes": None} for f in files],
                                       "label": [0] * len(files)})
