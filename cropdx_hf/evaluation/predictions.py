"""Batched inference over labelled photos: the logits a saved model gives on a split (lab, or its field proxy).

Metrics over those logits are in scores.py; calibration maths in calibration.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import datasets
import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from cropdx_hf.data.loading import LeafDataset, load_leaf_dataset
from cropdx_hf.data.splits import split_dataset
from cropdx_hf.errors import DataError
from cropdx_hf.evaluation import calibration
from cropdx_hf.modeling.config import class_ids, read_config
from cropdx_hf.modeling.folder import load_model_folder
from cropdx_hf.modeling.metadata import ReleaseMetadata
from cropdx_hf.modeling.transforms import batch_transform, channels_last, data_config, eval_transform, set_preprocessing

if TYPE_CHECKING:
    import pandas as pd

OUT_OF_FOLD = "field_out_of_fold.csv"  # in a model folder: every real field photo's out-of-fold logits


@dataclass
class SplitLogits:
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


def predict_split(model_dir: str | Path, data: str | Path | LeafDataset, split: str = "auto",
                  image_size: int | None = None, crop_pct: float | None = None,
                  field_photos: str | Path | None = None) -> SplitLogits:
    """SplitLogits of a saved model on `split` of `data` ('auto': the model's test split when its saved
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
    names = class_ids(config)
    unknown = sorted(set(dataset.class_names) - set(names))
    if unknown:
        keep = [i for i, c in enumerate(dataset.class_names) if c in names]
        rows = rows.filter(lambda label: label in keep, input_columns="label")
    if len(rows) == 0:
        raise DataError(f"{getattr(data, 'rows', data)}: no photos of the model's classes in split {split!r}")
    logits, labels = predict_logits(model, rows)
    to_model = np.array([names.index(c) if c in names else -1 for c in dataset.class_names])
    return SplitLogits(logits, to_model[labels], rows, list(names), ReleaseMetadata.from_config(config).temperature,
                       sorted({*dataset.skipped_classes, *unknown}))


def read_out_of_fold(model_dir: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """A release's `field_out_of_fold.csv` indexed by file (label, fold, one logit column per class) and the
    release's class order."""
    import pandas as pd

    path = Path(model_dir) / OUT_OF_FOLD
    if not path.is_file():
        raise DataError(f"{model_dir}: no out-of-fold field scores ({OUT_OF_FOLD}); train it with --field-data "
                        "and --folds")
    return pd.read_csv(path).set_index("file"), list(class_ids(read_config(model_dir)))


def logit_columns(class_names: list[str]) -> list[str]:
    """The out-of-fold file's logit columns, in `class_names` order (crossval.write_out_of_fold writes them)."""
    return [f"logit_{name}" for name in class_names]


def out_of_fold_split(model_dir: str | Path, data: str | Path | LeafDataset) -> SplitLogits:
    """SplitLogits of a release's stored out-of-fold logits (`field_out_of_fold.csv`, written by a training run
    with real field photos) on the photos of `data`: every photo scored by a fold model that never saw it. The
    photos are matched by file; a photo of `data` the file does not score is an error."""
    table, names = read_out_of_fold(model_dir)
    config = read_config(model_dir)
    dataset = data if isinstance(data, LeafDataset) else load_leaf_dataset(data)
    rows = dataset.rows
    missing = [f for f in rows["file"] if f not in table.index]
    if missing:
        raise DataError(f"{Path(model_dir) / OUT_OF_FOLD}: no out-of-fold score for {len(missing)} photo(s) of this "
                        f"data (e.g. {missing[0]})")
    logits = table.loc[rows["file"], logit_columns(names)].to_numpy(np.float32)
    to_model = np.array([names.index(c) if c in names else -1 for c in dataset.class_names])
    return SplitLogits(logits, to_model[np.asarray(rows["label"])], rows, list(names),
                       ReleaseMetadata.from_config(config).temperature, dataset.skipped_classes)


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
