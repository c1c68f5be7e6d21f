"""The leaf gate at run time: a linear leaf / not-a-leaf score on two kinds of evidence about the photo.

The score reads the release's own classifier features (what a field leaf of our crops looks like, learnt from
field-style views) beside a generic ImageNet network's pooled features (what a dog, a face or a wall looks like).
Either alone does worse on the proxies (docs/field.md): the classifier folds unknown scenes onto its 15 classes,
and the generic network has never seen a diseased leaf on soil. Each release has its own gate file
(`leaf_gate.safetensors` in its folder, named with its sha256 in the config): the classifier features differ from
release to release. A named gate that is missing or altered is an error, never a silent run without one.

The generic network is a third of a diagnosis's model time, and most photos do not need it: a shortcut score on the
classifier features alone decides a photo when it lies beyond every out-of-fold photo of the other kind seen in
fitting (a clear lab or field leaf, a clear wall); only the rest go through the generic network and the full score.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from cropdx_hf.errors import ModelFolderError
from cropdx_hf.modeling.metadata import LeafGateRecord, ReleaseMetadata

logger = logging.getLogger(__name__)
GATE_FILE = "leaf_gate.safetensors"
GATE_BACKBONE = "mobilenetv2_100"  # the bare ImageNet network beside the classifier (gate/network.py)
# 160 px: a fraction of the network's cost at 224 px, for a few more field-proxy leaves turned away and the same
# non-leaf rejection (measured in docs/field.md)
GATE_IMAGE_SIZE = 160
GATE_FOLDER = "leaf_gate"  # in an exports folder: the generic network's ONNX file, which every release shares
RETIRED_FILE = "leaf_detector.safetensors"  # the Mahalanobis gate before field training: lab leaves only
FIELDS = ("mean", "scale", "weights", "bias", "threshold")
SHORTCUT_FIELDS = ("weights", "bias", "leaf_above", "not_leaf_below")


@dataclass
class Shortcut:
    """score = weights . classifier features + bias (the standardisation folded in); a leaf above `leaf_above`, not
    a leaf below `not_leaf_below`, undecided otherwise (and wherever the two bounds cross)."""

    weights: np.ndarray
    bias: float
    leaf_above: float  # the highest out-of-fold score of a non-leaf in fitting
    not_leaf_below: float  # the lowest out-of-fold score of a leaf in fitting

    def decide(self, classifier_features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per photo: whether it is a leaf, and whether the shortcut decided that (else the full score must)."""
        score = np.asarray(classifier_features) @ self.weights + self.bias
        leaf, not_leaf = score > self.leaf_above, score < self.not_leaf_below
        return leaf, leaf ^ not_leaf


@dataclass
class LeafGate:
    """score = weights . (features - mean) / scale + bias, features = [classifier features, generic features];
    a photo is a leaf when score >= threshold."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    threshold: float
    classifier_dims: int  # how many leading features come from the release's classifier
    shortcut: Shortcut
    backbone: str = GATE_BACKBONE
    image_size: int = GATE_IMAGE_SIZE

    def score(self, classifier_features: np.ndarray, generic_features: np.ndarray) -> np.ndarray:
        """The leaf log-odds of the fitted logistic regression; larger means more leaf-like."""
        classifier_features, generic_features = np.asarray(classifier_features), np.asarray(generic_features)
        if classifier_features.shape[-1] + generic_features.shape[-1] != len(self.weights) \
                or classifier_features.shape[-1] != self.classifier_dims:
            raise ModelFolderError(f"the leaf gate expects {self.classifier_dims} classifier and "
                                   f"{len(self.weights) - self.classifier_dims} generic features, got "
                                   f"{classifier_features.shape[-1]} and {generic_features.shape[-1]}")
        # the standardisation folded into the weights: two dot products per photo
        weights = self.weights / self.scale
        bias = self.bias - weights @ self.mean
        dims = self.classifier_dims
        return classifier_features @ weights[:dims] + generic_features @ weights[dims:] + bias

    def is_leaf(self, classifier_features: np.ndarray, generic_features: np.ndarray) -> np.ndarray:
        return self.score(classifier_features, generic_features) >= self.threshold

    def decide(self, classifier_features: np.ndarray, generic_features_of: Callable[[list[int]], np.ndarray]
               ) -> np.ndarray:
        """Leaf or not per photo; `generic_features_of` (photo indices -> generic features) runs the generic network
        only for the photos the shortcut leaves undecided."""
        classifier_features = np.asarray(classifier_features)
        leaf, decided = self.shortcut.decide(classifier_features)
        undecided = np.flatnonzero(~decided).tolist()
        if undecided:
            leaf[undecided] = self.is_leaf(classifier_features[undecided], generic_features_of(undecided))
        return leaf

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / GATE_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {name: _tensor(getattr(self, name)) for name in FIELDS}
        tensors |= {f"shortcut.{name}": _tensor(getattr(self.shortcut, name)) for name in SHORTCUT_FIELDS}
        save_file(tensors, str(path), metadata={"backbone": self.backbone, "image_size": str(self.image_size),
                                                "classifier_dims": str(self.classifier_dims)})
        return path

    @classmethod
    def load(cls, path: str | Path) -> LeafGate:
        try:
            with safe_open(str(path), framework="numpy") as f:
                t = {name: f.get_tensor(name).astype(np.float64) for name in FIELDS}
                cut = {name: f.get_tensor(f"shortcut.{name}").astype(np.float64) for name in SHORTCUT_FIELDS}
                meta = f.metadata() or {}
            classifier_dims, backbone, image_size = int(meta["classifier_dims"]), meta["backbone"], \
                int(meta["image_size"])
        except Exception as err:  # safetensors raises its own error types for damaged files, KeyError for others
            raise ModelFolderError(f"{path}: not a readable leaf gate ({type(err).__name__}: {err}); refit it "
                                   "with `cropdx fit-leaf-gate`") from err
        shortcut = Shortcut(cut["weights"], *(float(cut[name][0]) for name in SHORTCUT_FIELDS[1:]))
        return cls(t["mean"], t["scale"], t["weights"], float(t["bias"][0]), float(t["threshold"][0]),
                   classifier_dims, shortcut, backbone, image_size)


def _tensor(value: np.ndarray | float) -> np.ndarray:
    return np.ascontiguousarray(np.atleast_1d(value), dtype=np.float32)


def file_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def gate_reference(model_dir: str | Path, report: dict[str, Any] | None = None) -> LeafGateRecord:
    """What a release's config records to name its gate: the file in its folder, the file's hash, and `report`."""
    return LeafGateRecord(GATE_FILE, file_digest(Path(model_dir) / GATE_FILE), report or {})


def gate_for_model(model_dir: str | Path, metadata: ReleaseMetadata) -> LeafGate | None:
    """The gate a model's config names, checked against its hash; None (with a warning) when it names none."""
    reference = metadata.leaf_gate
    if reference is None:
        retired = " (its leaf_detector.safetensors is the retired lab-only gate)" \
            if (Path(model_dir) / RETIRED_FILE).is_file() else ""
        logger.warning("%s: no leaf gate%s; photos that are not leaves will not be turned away", model_dir, retired)
        return None
    path = Path(model_dir) / reference.file
    if not path.is_file():
        raise ModelFolderError(f"{model_dir}: its config names the leaf gate {reference.file}, which is missing")
    if file_digest(path) != reference.sha256:
        raise ModelFolderError(f"{path}: not the leaf gate {model_dir} was released with (sha256 differs)")
    return LeafGate.load(path)
