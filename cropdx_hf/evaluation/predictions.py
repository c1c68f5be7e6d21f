"""Batched inference over labelled photos and every metric `cropdx evaluate` reports.

Metrics come from the `evaluate` modules the project ships (metrics/), calibration maths from
calibration.py; this module wires data, model and metrics together.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from cropdx_hf.data.loading import LeafDataset, load_leaf_dataset
from cropdx_hf.data.splits import split_dataset
from cropdx_hf.errors import DataError
from cropdx_hf.evaluation import calibration
from cropdx_hf.evaluation.metrics import load_metric
from cropdx_hf.inference.images import load_image
from cropdx_hf.inference.quality import assess
from cropdx_hf.modeling.config import update_metadata
from cropdx_hf.modeling.folder import load_model_folder
from cropdx_hf.modeling.transforms import batch_transform, channels_last, data_config, eval_transform, set_preprocessing


@dataclass
class Predictions:
    """Logits of one model on labelled rows, labels already in the model's class order."""

    logits: np.ndarray
    labels: np.ndarray
    rows: datasets.Dataset
    class_names: list[str]
    temperature: float = 1.0
    skipped_classes: list[str] = field(default_factory=list)  # the data's classes the model cannot name

    @property
    def probs(self) -> np.ndarray:
        return calibration.softmax(self.logits, self.temperature)


def classification_metrics(predictions: np.ndarray, references: np.ndarray) -> dict[str, float]:
    f1 = load_metric("f1")
    accuracy = load_metric("accuracy").compute(predictions=predictions, references=references)
    return {
        "accuracy": accuracy["accuracy"],
        "macro_f1": f1.compute(predictions=predictions, references=references, average="macro")["f1"],
        "weighted_f1": f1.compute(predictions=predictions, references=references, average="weighted")["f1"],
    }


@torch.inference_mode()
def predict_logits(
    model: torch.nn.Module, rows: datasets.Dataset, batch_size: int = 16, device: str = "cpu",
    forward: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Outputs (logits, or whatever `forward` returns) and labels for every row, preprocessed by the model's
    own eval config."""
    model = model.eval().to(device)
    data = rows.with_transform(batch_transform(eval_transform(data_config(model))))
    outputs, labels = [], []
    for batch in tqdm(DataLoader(data, batch_size=batch_size), desc="evaluating", leave=False):
        pixels = channels_last(batch["pixel_values"].to(device))
        outputs.append((forward(model, pixels) if forward else model(pixels)).float().cpu())
        labels.append(torch.as_tensor(batch["labels"]))
    return torch.cat(outputs).numpy(), torch.cat(labels).numpy()


def evaluate_rows(model: torch.nn.Module, rows: datasets.Dataset, **kwargs) -> dict[str, float]:
    if len(rows) == 0:
        return {"n": 0}
    logits, labels = predict_logits(model, rows, **kwargs)
    return {**classification_metrics(logits.argmax(-1), labels), "n": int(len(labels))}


def full_metrics(pred: Predictions, threshold: float) -> dict[str, Any]:
    """Everything metrics.json holds, for one set of predictions."""
    raw, probs = calibration.softmax(pred.logits), pred.probs
    predicted = probs.argmax(-1)
    present = sorted(set(pred.labels.tolist()) | set(predicted.tolist()))
    per_class = load_metric("per_class").compute(predictions=predicted, references=pred.labels, labels=present)
    top3 = np.argsort(-pred.logits, axis=-1)[:, :3]
    return {
        **classification_metrics(predicted, pred.labels),
        "top3_accuracy": float((top3 == pred.labels[:, None]).any(-1).mean()),
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


def predict_split(model_dir: str | Path, data: str | Path | LeafDataset, split: str = "auto",
                  image_size: int | None = None, crop_pct: float | None = None,
                  field_photos: str | Path | None = None) -> Predictions:
    """Predictions of a saved model on `split` of `data` ('auto': the model's test split when its saved
    split covers the data, otherwise every photo, e.g. field photos from another source), optionally at another
    input size or crop than the saved one (to measure what a change of preprocessing would do), or on the field
    proxy of the split (`field_photos`: a scripts/field_photos.py folder)."""
    model, config = load_model_folder(model_dir)
    set_preprocessing(model, data_config(model, image_size, crop_pct))
    dataset = data if isinstance(data, LeafDataset) else load_leaf_dataset(data)
    rows = select_split(dataset, Path(model_dir) / "split.csv", split)
    if field_photos:
        from cropdx_hf.field.proxy import FieldScenes

        train = select_split(dataset, Path(model_dir) / "split.csv", "train")
        rows = FieldScenes.from_folder(field_photos, train).proxy(rows)
    names = config["label_names"]
    unknown = sorted(set(dataset.class_names) - set(names))
    if unknown:
        keep = [i for i, c in enumerate(dataset.class_names) if c in names]
        rows = rows.filter(lambda label: label in keep, input_columns="label")
    if len(rows) == 0:
        raise DataError(f"{getattr(data, 'rows', data)}: no photos of the model's classes in split {split!r}")
    logits, labels = predict_logits(model, rows)
    to_model = np.array([names.index(c) if c in names else -1 for c in dataset.class_names])
    temperature = config.get("cropdx", {}).get("temperature", 1.0)
    return Predictions(logits, to_model[labels], rows, list(names), temperature,
                       sorted({*dataset.skipped_classes, *unknown}))


def select_split(dataset: LeafDataset, split_csv: Path, split: str) -> datasets.Dataset:
    if split == "all":
        return dataset.rows
    try:
        splits = split_dataset(dataset, split_csv) if split_csv.is_file() else None
    except DataError:
        splits = None
    if splits is None:
        if split == "auto":
            return dataset.rows
        raise DataError(f"{split_csv}: the model's saved split does not cover this data; use --split all")
    return splits["test" if split == "auto" else split]


def calibrate(model_dir: str | Path, data: str | Path | LeafDataset,
              field_photos: str | Path | None = None) -> dict[str, Any]:
    """Fit the temperature and choose the abstain threshold on the validation split, and on its field proxy
    when `field_photos` is given (the temperature fits both sets at once; the threshold must hold on each)."""
    dataset = data if isinstance(data, LeafDataset) else load_leaf_dataset(data)
    sets = {"lab": predict_split(model_dir, dataset, "validation")}
    if field_photos:
        sets["field_proxy"] = predict_split(model_dir, dataset, "validation", field_photos=field_photos)
    temperature = calibration.fit_temperature(np.concatenate([p.logits for p in sets.values()]),
                                              np.concatenate([p.labels for p in sets.values()]))
    for pred in sets.values():
        pred.temperature = temperature
    sweeps = {name: calibration.threshold_sweep(pred.probs, pred.labels) for name, pred in sets.items()}
    threshold, reason = calibration.choose_threshold(sweeps)
    result = {"temperature": temperature, "threshold": threshold, "threshold_reason": reason,
              "calibration": {name: _calibration_report(pred, sweeps[name], threshold) for name, pred in sets.items()}}
    update_metadata(model_dir, result)
    return result


def _calibration_report(pred: Predictions, sweep: list[dict[str, float]], threshold: float) -> dict[str, Any]:
    return {"split": "validation", "n": int(len(pred.labels)),
            "ece_before": calibration.expected_calibration_error(calibration.softmax(pred.logits), pred.labels),
            "ece_after": calibration.expected_calibration_error(pred.probs, pred.labels),
            "at_threshold": calibration.selective(pred.probs, pred.labels, threshold), "sweep": sweep}


def quality_flags(rows: datasets.Dataset) -> dict[str, int]:
    """How many of the photos the photo-quality check flags, in all and per check."""
    counts = {"photos": len(rows), "flagged": 0}
    for image in rows["image"]:
        failed = assess(load_image(image.get("bytes") or image["path"])).failed
        counts["flagged"] += bool(failed)
        for check in failed:
            counts[check.name] = counts.get(check.name, 0) + 1
    return counts


def write_metrics(path: Path, metrics: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2))
