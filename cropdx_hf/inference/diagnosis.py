"""From probabilities to what a farmer is told: diagnosed (with treatment), retake the photo, or not a leaf.

The one place the rules live, torch-free: the PyTorch and ONNX predictors, the Space, its REST API and the
CLI all end in `decide`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cropdx_hf.inference.quality import PhotoQuality
from cropdx_hf.inference.treatments import Treatment, photo_tips, treatment_for
from cropdx_hf.labels import display_name

NOT_A_LEAF = "This does not look like a tomato, potato or bell-pepper leaf. Photograph one leaf of one of these crops."
RETAKE = "The model is not sure enough to name a disease. Please retake the photo."
POOR_PHOTO = "The photo is not good enough to diagnose from ({reasons}). Please retake it."


@dataclass(frozen=True)
class ClassProbability:
    """One class and its calibrated probability: what `predict` returns, with no treatment or rule applied."""

    class_name: str
    probability: float

    def to_dict(self) -> dict[str, Any]:
        return {"class_name": self.class_name, "probability": self.probability}


@dataclass(frozen=True)
class Candidate:
    """One of the top-k diagnoses: the class, its calibrated probability and what to do about it."""

    class_name: str
    probability: float
    treatment: Treatment

    @classmethod
    def of(cls, class_id: str, probability: float) -> Candidate:
        return cls(class_id, round(probability, 6), treatment_for(class_id))

    @property
    def display_name(self) -> str:
        return display_name(self.class_name)

    def to_dict(self) -> dict[str, Any]:
        """As the JSON API shows a candidate: the treatment's headline fields beside the class."""
        t = self.treatment
        return {"class_name": self.class_name, "display_name": self.display_name, "probability": self.probability,
                "crop": t.crop, "disease": t.disease, "severity": t.severity, "actions": list(t.advice),
                "active_ingredients": [f"{i['name']} ({i['class']})" for i in t.active_ingredients]}


@dataclass
class Diagnosis:
    """What a farmer is told about one photo; `to_dict` is the JSON every API returns."""

    model: str
    status: str  # diagnosed | retake | not_a_leaf
    predictions: list[Candidate] = field(default_factory=list)
    message: str = ""
    tips: list[str] = field(default_factory=list)
    quality: PhotoQuality | None = None

    @property
    def confident(self) -> bool:
        return self.status == "diagnosed"

    @property
    def treatment(self) -> Treatment | None:
        """The top diagnosis's treatment card, only when the diagnosis is confident."""
        return self.predictions[0].treatment if self.confident else None

    def to_dict(self) -> dict[str, Any]:
        treatment = self.treatment
        return {"model": self.model, "status": self.status, "confident": self.confident, "message": self.message,
                "predictions": [c.to_dict() for c in self.predictions], "tips": self.tips,
                "treatment": treatment.to_dict() if treatment else None,
                "quality": self.quality.to_dict() if self.quality else None}


def decide(model: str, class_ids: Sequence[str], probs: np.ndarray, threshold: float,
           is_leaf: bool | None = None, top_k: int = 3, quality: PhotoQuality | None = None) -> Diagnosis:
    """The rule: not a leaf beats everything; a photo that fails a quality check, or whose top class is below
    the calibrated threshold, is to be retaken (with the top-3 shown and the reason given)."""
    quality_tips = [check.tip for check in quality.failed] if quality else []
    if is_leaf is False:
        return Diagnosis(model, "not_a_leaf", [], NOT_A_LEAF, quality_tips + photo_tips(), quality)
    order = np.argsort(-np.asarray(probs))[:top_k]
    predictions = [Candidate.of(class_ids[i], float(probs[i])) for i in order]
    if quality_tips:
        reasons = ", ".join(check.name.replace("_", " ") for check in quality.failed)
        return Diagnosis(model, "retake", predictions, POOR_PHOTO.format(reasons=reasons),
                         quality_tips + photo_tips(), quality)
    if predictions[0].probability < threshold:
        return Diagnosis(model, "retake", predictions, RETAKE, photo_tips(), quality)
    return Diagnosis(model, "diagnosed", predictions, quality=quality)
