"""Top-k prediction for one or many photos with a saved classifier (or a bare ImageNet backbone)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import timm.data
import torch

from .backbones import create_backbone
from .diagnosis import DEFAULT_THRESHOLD, Diagnosis, decide
from .images import load_image
from .leaf_detector import LeafDetector
from .model_folder import load_model_folder
from .results import Prediction
from .transforms import channels_last, data_config, eval_transform


class Predictor:
    """A model, its preprocessing and its label names; the one inference path for CLI, Space and tests."""

    def __init__(self, model: torch.nn.Module, label_names: Sequence[str], temperature: float = 1.0,
                 threshold: float = DEFAULT_THRESHOLD, detector: LeafDetector | None = None, name: str = ""):
        self.model = model.eval()
        self.label_names = list(label_names)
        self.temperature = temperature
        self.threshold = threshold
        self.detector = detector
        self.name = name
        self.transform = eval_transform(data_config(model))

    @classmethod
    def from_folder(cls, model_dir: str | Path) -> Predictor:
        model, config = load_model_folder(model_dir)
        meta = config.get("cropdx", {})
        return cls(model, config["label_names"], meta.get("temperature", 1.0),
                   meta.get("threshold", DEFAULT_THRESHOLD), LeafDetector.load(model_dir), Path(model_dir).name)

    @classmethod
    def from_backbone(cls, name: str) -> Predictor:
        """The bare ImageNet classifier: proves the offline weights, diagnoses nothing."""
        info = timm.data.ImageNetInfo()
        return cls(create_backbone(name), [info.index_to_description(i) for i in range(1000)])

    def pixels(self, images: Sequence) -> torch.Tensor:
        return torch.stack([self.transform(load_image(image)) for image in images])

    @torch.inference_mode()
    def probabilities(self, images: Sequence) -> torch.Tensor:
        """Softmax of temperature-scaled logits, one row per image (paths, bytes or PIL images)."""
        return (self.model(channels_last(self.pixels(images))) / self.temperature).softmax(dim=-1)

    def diagnose(self, image, top_k: int = 3) -> Diagnosis:
        """Raises ImageError for unusable input; everything else is an answer."""
        photo = load_image(image)
        probs = self.probabilities([photo])[0].numpy()
        leaf = None if self.detector is None else bool(self.detector.check([photo])[0])
        return decide(self.name, self.label_names, probs, self.threshold, leaf, top_k)

    def predict(self, image, top_k: int = 3) -> list[Prediction]:
        probs = self.probabilities([image])[0]
        values, indices = probs.topk(min(top_k, len(self.label_names)))
        return [Prediction(self.label_names[i], float(p)) for p, i in zip(values, indices, strict=True)]
