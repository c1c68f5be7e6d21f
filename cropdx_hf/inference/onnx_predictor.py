"""Torch-free inference for app makers and the Space: onnxruntime, numpy and Pillow only.

Preprocessing re-implements timm's eval transform (resize the short side to size / crop_pct with the
model's interpolation, centre crop, scale, normalise) from the exported config.json, with the same Pillow
calls torchvision makes, so the logits match the PyTorch path. The classifier and the leaf gate resize and crop
a photo the same way when their configs agree, so each photo is resized once.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from PIL import Image

from cropdx_hf.errors import ModelFolderError
from cropdx_hf.gate.leaf_gate import GATE_FOLDER, LeafGate, gate_for_model
from cropdx_hf.inference.diagnosis import ClassProbability, Diagnosis, decide
from cropdx_hf.inference.quality import assess
from cropdx_hf.modeling.config import ONNX_FP32, ONNX_INT8, WEIGHTS, class_ids, read_config
from cropdx_hf.modeling.exports import GATE_EXPORT_REPORT, ExportRecord
from cropdx_hf.modeling.metadata import ReleaseMetadata
from cropdx_hf.photos import load_image

GATE_ONNX, GATE_ONNX_INT8 = "gate_network.onnx", "gate_network_int8.onnx"  # the gate's generic network,
FEATURES_OUTPUT = "features"  # the classifier export's second output: the pooled features its head reads
_RESAMPLE = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "nearest": Image.NEAREST}


def served_file(export_dir: str | Path) -> str:
    """INT8 where the export's verification qualified it, fp32 otherwise."""
    qualified = ExportRecord.read(export_dir).serves_int8
    return ONNX_INT8 if qualified and (Path(export_dir) / ONNX_INT8).is_file() else ONNX_FP32


def session(path: str | Path, threads: int = 2) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: graph optimisation logs one warning per folded constant
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
        if photo.size != new_size:  # PIL copies the photo even for a resize to its own size
            photo = photo.resize(new_size, _RESAMPLE[self.interpolation])
        left, top = int(round((new_size[0] - self.size) / 2.0)), int(round((new_size[1] - self.size) / 2.0))
        return np.asarray(photo.crop((left, top, left + self.size, top + self.size)))

    def normalize(self, crop: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Float32 CHW: (pixel / 255 - mean) / std as one multiply-add per channel, written into `out` when given
        (no float temporaries: cheaper than the three-step form, equal to it within float rounding)."""
        out = np.empty((3, self.size, self.size), np.float32) if out is None else out
        scale = 1.0 / (255.0 * np.asarray(self.std, np.float32))
        np.multiply(crop.transpose(2, 0, 1), scale[:, None, None], out=out)
        out += (-np.asarray(self.mean, np.float32) / np.asarray(self.std, np.float32))[:, None, None]
        return out

    def batch(self, photos: Sequence[Image.Image], crops: dict | None = None) -> np.ndarray:
        """Float32 NCHW; `crops` (crop settings and photo -> crop, for one call's photos) lets a second model reuse
        the first one's resizing, for all the photos or some of them."""
        crops = {} if crops is None else crops
        pixels = np.empty((len(photos), 3, self.size, self.size), np.float32)
        for i, photo in enumerate(photos):
            key = self.crop_key, id(photo)  # the photos live through the call: their ids stay theirs
            if key not in crops:
                crops[key] = self.crop(photo)
            self.normalize(crops[key], pixels[i])
        return pixels


class OnnxGateNetwork:
    """The leaf gate's generic network exported by `cropdx export`: pixels to pooled features (INT8 while the
    releases' verification keeps it, fp32 otherwise)."""

    def __init__(self, export_dir: str | Path, threads: int = 2):
        record = ExportRecord.read(export_dir, GATE_EXPORT_REPORT)
        report = record.report
        int8 = record.serves_int8 and (Path(export_dir) / GATE_ONNX_INT8).is_file()
        self.file_name = GATE_ONNX_INT8 if int8 else GATE_ONNX
        self.session = session(Path(export_dir) / self.file_name, threads)
        self.backbone, self.image_size = report["backbone"], report["image_size"]
        self.preprocessing = Preprocessing.from_config(report["pretrained_cfg"])

    def features(self, photos: Sequence[Image.Image], crops: dict | None = None) -> np.ndarray:
        return self.session.run(None, {"pixel_values": self.preprocessing.batch(photos, crops)})[0]


def gate_network_dir(export_dir: str | Path) -> Path:
    """Where a classifier export's gate network lies: beside it in a pushed repo's onnx/ folder, else in the
    exports folder's shared leaf_gate/."""
    export_dir = Path(export_dir)
    return export_dir if (export_dir / GATE_ONNX).is_file() else export_dir.parent / GATE_FOLDER


class OnnxPredictor:
    """Same interface as `Predictor`: calibrated probabilities, top-k and diagnoses from an export folder."""

    def __init__(self, export_dir: str | Path, file_name: str = ONNX_FP32, threads: int = 2,
                 gate: LeafGate | None = None, gate_network: OnnxGateNetwork | None = None):
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
        if gate is not None and (gate_network is None or (gate_network.backbone, gate_network.image_size)
                                 != (gate.backbone, gate.image_size)):
            raise ModelFolderError(f"{export_dir}: its leaf gate reads {gate.backbone} at {gate.image_size} px, "
                                   "which the exported gate network is not; run `cropdx export` again")
        self.gate, self.gate_network = gate, gate_network

    @classmethod
    def from_export(cls, export_dir: str | Path, file_name: str | None = None, threads: int = 2) -> OnnxPredictor:
        """An export folder with the leaf gate its config names (a copy lies in the folder) and the exported
        gate network (`gate_network_dir`); `file_name` None: the file the export's verification qualified."""
        gate = gate_for_model(export_dir, ReleaseMetadata.from_config(read_config(export_dir, weights=ONNX_FP32)))
        network = OnnxGateNetwork(gate_network_dir(export_dir), threads) if gate else None
        return cls(export_dir, file_name or served_file(export_dir), threads, gate, network)

    @classmethod
    def for_release(cls, model_dir: str | Path, export_dir: str | Path, threads: int = 2,
                    file_name: str | None = None) -> OnnxPredictor:
        """The served files of a release's export (or `file_name` of it), checked to be made from the release's
        weights and gate."""
        exported = ExportRecord.read(export_dir).weights_sha256
        if exported != hashlib.sha256((Path(model_dir) / WEIGHTS).read_bytes()).hexdigest():
            raise ModelFolderError(f"{export_dir}: exported from other weights than {model_dir} holds; run "
                                   "`cropdx export` again")
        exported_gate = ReleaseMetadata.from_config(read_config(export_dir, weights=ONNX_FP32)).leaf_gate
        if exported_gate != ReleaseMetadata.read(model_dir).leaf_gate:
            raise ModelFolderError(f"{export_dir}: exported with another leaf gate than {model_dir} names; run "
                                   "`cropdx export` again")
        predictor = cls.from_export(export_dir, file_name, threads=threads)
        predictor.name = Path(model_dir).name
        return predictor

    def preprocess(self, image) -> np.ndarray:
        return self.preprocessing.normalize(self.preprocessing.crop(load_image(image)))

    def forward(self, images: Sequence, crops: dict | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Calibrated probabilities, and the pooled features when the export returns them."""
        photos = [load_image(image) for image in images]
        outputs = self.session.run(None, {self.input_name: self.preprocessing.batch(photos, crops)})
        scaled = outputs[0] / self.temperature
        exp = np.exp(scaled - scaled.max(axis=-1, keepdims=True))
        return exp / exp.sum(axis=-1, keepdims=True), outputs[1] if len(outputs) > 1 else None

    def probabilities(self, images: Sequence, crops: dict | None = None) -> np.ndarray:
        return self.forward(images, crops)[0]

    def diagnose(self, image, top_k: int = 3) -> Diagnosis:
        """Raises ImageError for unusable input; everything else is an answer."""
        return self.diagnose_many([image], top_k)[0]

    def diagnose_many(self, images: Sequence, top_k: int = 3) -> list[Diagnosis]:
        """The PyTorch `Predictor.diagnose_many` rules (gate, quality, threshold, treatments) on ONNX Runtime."""
        photos = [load_image(image) for image in images]
        crops: dict = {}
        probs, features = self.forward(photos, crops)
        leaves: list[bool | None] = [None] * len(photos)
        if self.gate is not None:
            network = self.gate_network
            decisions = self.gate.decide(features, lambda undecided: network.features([photos[i] for i in undecided],
                                                                                        crops))
            leaves = [bool(v) for v in decisions]
        return [decide(self.name, self.class_ids, p, self.threshold, leaf, top_k, assess(photo))
                for p, leaf, photo in zip(probs, leaves, photos, strict=True)]

    def predict(self, image, top_k: int = 3) -> list[ClassProbability]:
        probs = self.probabilities([image])[0]
        order = np.argsort(-probs)[:top_k]
        return [ClassProbability(self.class_ids[i], float(probs[i])) for i in order]
