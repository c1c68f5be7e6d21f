"""Torch-free inference for app makers and the Space: onnxruntime, numpy and Pillow only.

Preprocessing re-implements timm's eval transform (resize the short side to size / crop_pct with the
model's interpolation, centre crop, scale, normalise) from the exported config.json, with the same Pillow
calls torchvision makes, so the logits match the PyTorch path. The classifier and the leaf gate resize and crop
a photo the same way when their configs agree, so each photo is resized once.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from PIL import Image

from cropdx_hf.errors import ModelFolderError
from cropdx_hf.inference.diagnosis import ClassProbability, Diagnosis, decide
from cropdx_hf.inference.images import load_image
from cropdx_hf.inference.quality import assess
from cropdx_hf.modeling.config import ONNX_FP32, ONNX_INT8, WEIGHTS, class_ids, read_config
from cropdx_hf.modeling.metadata import ReleaseMetadata

EXPORT_REPORT = "export_metrics.json"  # what `cropdx export` measured, and which file it qualified
GATE_ONNX = "leaf_gate.onnx"  # written by cropdx_hf.gate.export, with its report:
GATE_EXPORT_REPORT = "gate_export.json"
_RESAMPLE = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "nearest": Image.NEAREST}


def served_file(export_dir: str | Path) -> str:
    """INT8 where the export's verification qualified it, fp32 otherwise."""
    report = json.loads((Path(export_dir) / EXPORT_REPORT).read_text())
    int8 = report.get("int8", {})
    qualified = int8.get("served", int8.get("recommended", False))
    return ONNX_INT8 if qualified and (Path(export_dir) / ONNX_INT8).is_file() else ONNX_FP32


def session(path: str | Path, threads: int = 2) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@dataclass(frozen=True)
class Preprocessing:
    """timm's eval transform from a `pretrained_cfg`: resize, centre crop, normalise."""

    size: int
    resize: int
    interpolation: str
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> Preprocessing:
        size = cfg["input_size"][-1]
        return cls(size, math.floor(size / cfg.get("crop_pct", 0.875)), cfg.get("interpolation", "bicubic"),
                   tuple(cfg["mean"]), tuple(cfg["std"]))

    @property
    def crop_key(self) -> tuple[int, int, str]:
        return self.size, self.resize, self.interpolation

    def crop(self, photo: Image.Image) -> np.ndarray:
        """uint8 HxWx3: the short side resized to `resize`, the centre `size` x `size` kept."""
        width, height = photo.size
        short, long = (width, height) if width <= height else (height, width)
        new_long = int(self.resize * long / short)
        new_size = (self.resize, new_long) if width <= height else (new_long, self.resize)
        photo = photo.resize(new_size, _RESAMPLE[self.interpolation])
        left, top = int(round((new_size[0] - self.size) / 2.0)), int(round((new_size[1] - self.size) / 2.0))
        return np.asarray(photo.crop((left, top, left + self.size, top + self.size)))

    def normalize(self, crop: np.ndarray) -> np.ndarray:
        pixels = crop.astype(np.float32) / 255.0
        return ((pixels - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)).transpose(2, 0, 1)

    def batch(self, photos: Sequence[Image.Image], crops: dict | None = None) -> np.ndarray:
        """Float32 NCHW; `crops` (photo index -> crop) lets a second model reuse the first one's resizing."""
        crops = {} if crops is None else crops
        for i, photo in enumerate(photos):
            if (self.crop_key, i) not in crops:
                crops[self.crop_key, i] = self.crop(photo)
        return np.stack([self.normalize(crops[self.crop_key, i]) for i in range(len(photos))]).astype(np.float32)


class OnnxGate:
    """The leaf gate exported by `cropdx export`: one graph from pixels to the leaf score."""

    def __init__(self, export_dir: str | Path, threads: int = 2):
        report = json.loads((Path(export_dir) / GATE_EXPORT_REPORT).read_text())
        self.session = session(Path(export_dir) / GATE_ONNX, threads)
        self.threshold: float = report["threshold"]
        self.gate_sha256: str = report["gate_sha256"]
        self.preprocessing = Preprocessing.from_config(report["pretrained_cfg"])

    def check(self, photos: Sequence[Image.Image], crops: dict | None = None) -> np.ndarray:
        scores = self.session.run(None, {"pixel_values": self.preprocessing.batch(photos, crops)})[0]
        return scores >= self.threshold


class OnnxPredictor:
    """Same interface as `Predictor`: calibrated probabilities, top-k and diagnoses from an export folder."""

    def __init__(self, export_dir: str | Path, file_name: str = ONNX_FP32, threads: int = 2,
                 gate: OnnxGate | None = None):
        config = read_config(export_dir, weights=file_name)
        self.session = session(Path(export_dir) / file_name, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.class_ids: list[str] = class_ids(config)
        meta = ReleaseMetadata.from_config(config)
        self.temperature, self.threshold = meta.temperature, meta.threshold
        self.name = Path(export_dir).name
        self.file_name = file_name
        self.data_config = config["pretrained_cfg"]
        self.preprocessing = Preprocessing.from_config(self.data_config)
        self.gate = gate

    @classmethod
    def for_release(cls, model_dir: str | Path, export_dir: str | Path, gate_dir: str | Path,
                    threads: int = 2) -> OnnxPredictor:
        """The served files of a release's export, and the exported gate its config names (hash-checked)."""
        meta = ReleaseMetadata.read(model_dir)
        exported = json.loads((Path(export_dir) / EXPORT_REPORT).read_text()).get("weights_sha256")
        if exported != hashlib.sha256((Path(model_dir) / WEIGHTS).read_bytes()).hexdigest():
            raise ModelFolderError(f"{export_dir}: exported from other weights than {model_dir} holds; run "
                                   "`cropdx export` again")
        gate = None
        if meta.leaf_gate:
            gate = OnnxGate(gate_dir, threads)
            if gate.gate_sha256 != meta.leaf_gate["sha256"]:
                raise ModelFolderError(f"{gate_dir}: exported from another leaf gate than {model_dir} names; "
                                       "run `cropdx export` again")
        predictor = cls(export_dir, served_file(export_dir), threads, gate)
        predictor.name = Path(model_dir).name
        return predictor

    def preprocess(self, image) -> np.ndarray:
        return self.preprocessing.normalize(self.preprocessing.crop(load_image(image)))

    def logits(self, images: Sequence, crops: dict | None = None) -> np.ndarray:
        photos = [load_image(image) for image in images]
        return self.session.run(None, {self.input_name: self.preprocessing.batch(photos, crops)})[0]

    def probabilities(self, images: Sequence, crops: dict | None = None) -> np.ndarray:
        scaled = self.logits(images, crops) / self.temperature
        exp = np.exp(scaled - scaled.max(axis=-1, keepdims=True))
        return exp / exp.sum(axis=-1, keepdims=True)

    def diagnose(self, image, top_k: int = 3) -> Diagnosis:
        """Raises ImageError for unusable input; everything else is an answer."""
        return self.diagnose_many([image], top_k)[0]

    def diagnose_many(self, images: Sequence, top_k: int = 3) -> list[Diagnosis]:
        """The PyTorch `Predictor.diagnose_many` rules (gate, quality, threshold, treatments) on ONNX Runtime."""
        photos = [load_image(image) for image in images]
        crops: dict = {}
        probs = self.probabilities(photos, crops)
        leaves = [None] * len(photos) if self.gate is None else [bool(v) for v in self.gate.check(photos, crops)]
        return [decide(self.name, self.class_ids, p, self.threshold, leaf, top_k, assess(photo))
                for p, leaf, photo in zip(probs, leaves, photos, strict=True)]

    def predict(self, image, top_k: int = 3) -> list[ClassProbability]:
        probs = self.probabilities([image])[0]
        order = np.argsort(-probs)[:top_k]
        return [ClassProbability(self.class_ids[i], float(probs[i])) for i in order]
