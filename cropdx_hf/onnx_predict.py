"""Torch-free inference for app makers: onnxruntime, numpy and Pillow only.

Preprocessing re-implements timm's eval transform (resize the short side to size / crop_pct with the
model's interpolation, centre crop, scale, normalise) from the exported config.json, with the same Pillow
calls torchvision makes, so the logits match the PyTorch path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from .diagnosis import DEFAULT_THRESHOLD, Diagnosis, decide
from .images import load_image
from .model_config import read_config
from .results import Prediction

ONNX_FP32 = "model.onnx"
ONNX_INT8 = "model_int8.onnx"
_RESAMPLE = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "nearest": Image.NEAREST}


def session(path: str | Path, threads: int = 2) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxPredictor:
    """Same interface as `Predictor`: calibrated probabilities and top-k from an export folder."""

    def __init__(self, export_dir: str | Path, file_name: str = ONNX_FP32, threads: int = 2):
        config = read_config(export_dir, weights=file_name)
        self.session = session(Path(export_dir) / file_name, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.label_names: list[str] = config["label_names"]
        meta = config.get("cropdx", {})
        self.temperature: float = meta.get("temperature", 1.0)
        self.threshold: float = meta.get("threshold", DEFAULT_THRESHOLD)
        self.name = Path(export_dir).name
        self.data_config = config["pretrained_cfg"]

    def preprocess(self, image) -> np.ndarray:
        cfg = self.data_config
        size = cfg["input_size"][-1]
        pil = load_image(image)
        scale = math.floor(size / cfg.get("crop_pct", 0.875))
        width, height = pil.size
        short, long = (width, height) if width <= height else (height, width)
        new_long = int(scale * long / short)
        new_size = (scale, new_long) if width <= height else (new_long, scale)
        pil = pil.resize(new_size, _RESAMPLE[cfg.get("interpolation", "bicubic")])
        left, top = int(round((new_size[0] - size) / 2.0)), int(round((new_size[1] - size) / 2.0))
        pixels = np.asarray(pil.crop((left, top, left + size, top + size)), dtype=np.float32) / 255.0
        pixels = (pixels - np.asarray(cfg["mean"], np.float32)) / np.asarray(cfg["std"], np.float32)
        return pixels.transpose(2, 0, 1)

    def logits(self, images: Sequence) -> np.ndarray:
        batch = np.stack([self.preprocess(image) for image in images]).astype(np.float32)
        return self.session.run(None, {self.input_name: batch})[0]

    def probabilities(self, images: Sequence) -> np.ndarray:
        scaled = self.logits(images) / self.temperature
        exp = np.exp(scaled - scaled.max(axis=-1, keepdims=True))
        return exp / exp.sum(axis=-1, keepdims=True)

    def diagnose(self, image, top_k: int = 3) -> Diagnosis:
        """Same threshold and treatment lookup as PyTorch; no leaf detector (its gate network runs in PyTorch)."""
        return decide(self.name, self.label_names, self.probabilities([image])[0], self.threshold, None, top_k)

    def predict(self, image, top_k: int = 3) -> list[Prediction]:
        probs = self.probabilities([image])[0]
        order = np.argsort(-probs)[:top_k]
        return [Prediction(self.label_names[i], float(probs[i])) for i in order]
