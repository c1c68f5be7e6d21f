"""The leaf gate at run time: a linear leaf / not-a-leaf score on a generic network's pooled features.

A release's config names the gate file it uses (`cropdx.leaf_gate`: path relative to the model folder and its
sha256). The releases share one file under models/leaf_gate/; a pushed repo carries its own copy. A named
gate that is missing or altered is an error, never a silent run without one.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from safetensors import safe_open
from safetensors.numpy import save_file

from cropdx_hf.errors import ModelFolderError
from cropdx_hf.modeling.metadata import ReleaseMetadata

logger = logging.getLogger(__name__)
GATE_FILE = "leaf_gate.safetensors"
GATE_BACKBONE = "mobilenetv2_100"  # the bare ImageNet network the gate reads photos through (gate/network.py)
GATE_FOLDER = "leaf_gate"  # in a models folder the shared gate, in an exports folder its ONNX export
RETIRED_FILE = "leaf_detector.safetensors"  # the Mahalanobis gate before field training: lab leaves only
FIELDS = ("mean", "scale", "weights", "bias", "threshold")


@dataclass
class LeafGate:
    """score = weights . (features - mean) / scale + bias; a photo is a leaf when score >= threshold."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    threshold: float
    backbone: str = GATE_BACKBONE

    def score(self, features: np.ndarray) -> np.ndarray:
        """The leaf log-odds of the fitted logistic regression; larger means more leaf-like."""
        return (np.asarray(features, np.float64) - self.mean) / self.scale @ self.weights + self.bias

    def is_leaf(self, features: np.ndarray) -> np.ndarray:
        return self.score(features) >= self.threshold

    def check(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Which of these (already decoded) photos look like leaves, through the PyTorch gate network."""
        import torch

        from cropdx_hf.gate.network import gate_network, pooled_features

        model, transform = gate_network(self.backbone)
        with torch.inference_mode():
            features = pooled_features(model, torch.stack([transform(image) for image in images]))
        return self.is_leaf(features.numpy())

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / GATE_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {name: np.ascontiguousarray(np.atleast_1d(getattr(self, name)), dtype=np.float32) for name in FIELDS}
        save_file(tensors, str(path), metadata={"backbone": self.backbone})
        return path

    @classmethod
    def load(cls, path: str | Path) -> LeafGate:
        try:
            with safe_open(str(path), framework="numpy") as f:
                t = {name: f.get_tensor(name).astype(np.float64) for name in FIELDS}
                backbone = (f.metadata() or {}).get("backbone", GATE_BACKBONE)
        except Exception as err:  # safetensors raises its own error types for damaged files, KeyError for others
            raise ModelFolderError(f"{path}: not a readable leaf gate ({err}); refit it with "
                                   "`cropdx fit-leaf-gate`") from err
        return cls(t["mean"], t["scale"], t["weights"], float(t["bias"][0]), float(t["threshold"][0]), backbone)


def file_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def gate_reference(model_dir: str | Path, gate_file: str | Path) -> dict[str, str]:
    """What a release's config records to name its gate: the path relative to the folder, and the hash."""
    relative = Path(gate_file).resolve().relative_to(Path(model_dir).resolve().parent)
    return {"file": (Path("..") / relative).as_posix(), "sha256": file_digest(gate_file)}


def gate_for_model(model_dir: str | Path, metadata: ReleaseMetadata) -> LeafGate | None:
    """The gate a model's config names, checked against its hash; None (with a warning) when it names none."""
    reference = metadata.leaf_gate
    if not reference or "file" not in reference:
        retired = " (its leaf_detector.safetensors is the retired lab-only gate)" \
            if (Path(model_dir) / RETIRED_FILE).is_file() else ""
        logger.warning("%s: no leaf gate%s; photos that are not leaves will not be turned away", model_dir, retired)
        return None
    path = Path(model_dir) / reference["file"]
    if not path.is_file():
        raise ModelFolderError(f"{model_dir}: its config names the leaf gate {reference['file']}, which is missing")
    if file_digest(path) != reference["sha256"]:
        raise ModelFolderError(f"{path}: not the leaf gate {model_dir} was released with (sha256 differs)")
    return LeafGate.load(path)
