"""Every metric `cropdx evaluate` reports, from the `evaluate` modules the project ships (metrics/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch

from cropdx_hf.evaluation import calibration
from cropdx_hf.evaluation.metrics import load_metric
from cropdx_hf.evaluation.predictions import SplitLogits, predict_logits
from cropdx_hf.inference.quality import assess
from cropdx_hf.photos import load_stored_photo


def classification_metrics(predictions: np.ndarray, references: np.ndarray) -> dict[str, float]:
    f1 = load_metric("f1")
    accuracy = load_metric("accuracy").compute(predictions=predictions, references=references)
    return {
        "accuracy": accuracy["accuracy"],
        "macro_f1": f1.compute(predictions=predictions, references=references, average="macro")["f1"],
        "weighted_f1": f1.compute(predictions=predictions, references=references, average="weighted")["f1"],
    }


def top_k_accuracy(logits: np.ndarray, labels: np.ndarray, k: int = 3) -> float:
    """Share of rows whose label is among the k highest logits."""
    top = np.argsort(-np.asarray(logits), axis=-1)[:, :k]
    return float((top == np.asarray(labels)[:, None]).any(-1).mean())


def evaluate_rows(model: torch.nn.Module, rows: datasets.Dataset, **kwargs) -> dict[str, float]:
    if len(rows) == 0:
        return {"n": 0}
    logits, labels = predict_logits(model, rows, **kwargs)
    return {**classification_metrics(logits.argmax(-1), labels), "n": int(len(labels))}


def full_metrics(pred: SplitLogits, threshold: float) -> dict[str, Any]:
    """Everything metrics.json holds, for one set of predictions."""
    raw, probs = calibration.softmax(pred.logits), pred.probs
    predicted = probs.argmax(-1)
    present = sorted(set(pred.labels.tolist()) | set(predicted.tolist()))
    per_class = load_metric("per_class").compute(predictions=predicted, references=pred.labels, labels=present)
    return {
        **classification_metrics(predicted, pred.labels),
        "top3_accuracy": top_k_accuracy(pred.logits, pred.labels, 3),
        "n": int(len(pred.labels)),
        "per_class": {pred.class_names[c]: {k: per_class[k][i] for k in ("precision", "recall", "f1", "support")}
                      for i, c in enumerate(present)},
        "temperature": pred.temperature,
        "ece_before_calibration": calibration.expected_calibration_error(raw, pred.labels),
        "ece_after_calibration": calibration.expected_calibration_error(probs, pred.labels),
        "at_threshold": calibration.selective(probs, pred.labels, threshold),
        "mean_confidence_right": float(probs.max(-1)[predicted == pred.labels].mean()),
        "mean_confidence_wrong": float(probs.max(-1)[predicted != pred.labels].mean())
        if (predicted != pred.labels).any() else None,
    }


def quality_flags(rows: datasets.Dataset) -> dict[str, int]:
    """How many of the photos the photo-quality check flags, in all and per check."""
    counts = {"photos": len(rows), "flagged": 0}
    for image in rows["image"]:
        failed = assess(load_stored_photo(image)).failed
        counts["flagged"] += bool(failed)
        for check in failed:
            counts[check.name] = counts.get(check.name, 0) + 1
    return counts


def write_metrics(path: Path, metrics: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2))
