"""Top-k prediction for one or many photos with a saved classifier (or a bare ImageNet backbone)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import timm.data
import torch

from cropdx_hf.gate.leaf_gate import LeafGate, gate_for_model
from cropdx_hf.gate.network import generic_features, pooled_features
from cropdx_hf.inference.diagnosis import ClassProbability, Diagnosis, decide
from cropdx_hf.inference.quality import assess
from cropdx_hf.modeling.backbones import create_backbone
from cropdx_hf.modeling.config import class_ids
from cropdx_hf.modeling.folder import load_model_folder
from cropdx_hf.modeling.metadata import DEFAULT_THRESHOLD, ReleaseMetadata
from cropdx_hf.modeling.transforms import channels_last, data_config, eval_transform
from cropdx_hf.photos import load_image


class Predictor:
    """A model, its preprocessing and its label names; the one inference path for CLI, Space and tests."""

    def __init__(self, model: torch.nn.Module, class_ids: Sequence[str], temperature: float = 1.0,
                 threshold: float = DEFAULT_THRESHOLD, gate: LeafGate | None = None, name: str = ""):
        self.model = model.eval()
        self.class_ids = list(class_ids)
        self.temperature = temperature
        self.threshold = threshold
        self.gate = gate
        self.name = name
        self.transform = eval_transform(data_config(model))

    @classmethod
    def from_folder(cls, model_dir: str | Path) -> Predictor:
        model, config = load_model_folder(model_dir)
        meta = ReleaseMetadata.from_config(config)
        return cls(model, class_ids(config), meta.temperature, meta.threshold, gate_for_model(model_dir, meta),
                   Path(model_dir).name)

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
        return self.forward(images)[0]

    @torch.inference_mode()
    def forward(self, images: Sequence) -> tuple[torch.Tensor, torch.Tensor]:
        """Calibrated probabilities and the pooled features the head turned into them (the leaf gate reads
        those), from one pass."""
        features = pooled_features(self.model, channels_last(self.pixels(images)))
        return (self.model.get_classifier()(features) / self.temperature).softmax(dim=-1), features

    def is_leaf(self, photos: Sequence, classifier_features: torch.Tensor) -> list[bool | None]:
        """The gate's decision per photo; None for every photo when the model has no gate."""
        if self.gate is None:
            return [None] * len(photos)
        gate = self.gate

        def generic(indices: list[int]):
            return generic_features([photos[i] for i in indices], gate.backbone, gate.image_size).numpy()

        return [bool(v) for v in gate.decide(classifier_features.numpy(), generic)]

    def diagnose(self, image, top_k: int = 3) -> Diagnosis:
        """Raises ImageError for unusable input; everything else is an answer."""
        return self.diagnose_many([image], top_k)[0]

    def diagnose_many(self, images: Sequence, top_k: int = 3) -> list[Diagnosis]:
        """`diagnose` for a batch of photos: one pass of the classifier and one of the gate."""
        photos = [load_image(image) for image in images]
        probs, features = self.forward(photos)
        leaves = self.is_leaf(photos, features)
        return [decide(self.name, self.class_ids, p, self.threshold, leaf, top_k, assess(photo))
                for p, leaf, photo in zip(probs.numpy(), leaves, photos, strict=True)]

    def predict(self, image, top_k: int = 3) -> list[ClassProbability]:
        probs = self.probabilities([image])[0]
        values, indices = probs.topk(min(top_k, len(self.class_ids)))
        return [ClassProbability(self.class_ids[i], float(p)) for p, i in zip(values, indices, strict=True)]
