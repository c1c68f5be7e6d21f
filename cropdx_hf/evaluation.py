"""Batched inference over a split and the headline metrics, computed with the shipped `evaluate` modules."""

from __future__ import annotations

import datasets
import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .metrics import load_metric
from .transforms import batch_transform, data_config, eval_transform


def classification_metrics(predictions: np.ndarray, references: np.ndarray) -> dict[str, float]:
    f1 = load_metric("f1")
    return {
        "accuracy": load_metric("accuracy").compute(predictions=predictions, references=references)["accuracy"],
        "macro_f1": f1.compute(predictions=predictions, references=references, average="macro")["f1"],
        "weighted_f1": f1.compute(predictions=predictions, references=references, average="weighted")["f1"],
    }


@torch.inference_mode()
def predict_logits(
    model: torch.nn.Module, rows: datasets.Dataset, batch_size: int = 64, device: str = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels for every row, preprocessed by the model's own eval config."""
    model = model.eval().to(device)
    data = rows.with_transform(batch_transform(eval_transform(data_config(model))))
    logits, labels = [], []
    for batch in tqdm(DataLoader(data, batch_size=batch_size), desc="evaluating", leave=False):
        logits.append(model(batch["pixel_values"].to(device)).float().cpu())
        labels.append(torch.as_tensor(batch["labels"]))
    return torch.cat(logits).numpy(), torch.cat(labels).numpy()


def evaluate_rows(model: torch.nn.Module, rows: datasets.Dataset, **kwargs) -> dict[str, float]:
    logits, labels = predict_logits(model, rows, **kwargs)
    return {**classification_metrics(logits.argmax(-1), labels), "n": int(len(labels))}
