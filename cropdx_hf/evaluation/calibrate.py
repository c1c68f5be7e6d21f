"""`cropdx calibrate`: fit a release's temperature and abstain threshold, and record them in its metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cropdx_hf.data.loading import LeafDataset, load_leaf_dataset
from cropdx_hf.evaluation import calibration
from cropdx_hf.evaluation.predictions import SplitLogits, predict_split
from cropdx_hf.modeling.metadata import ReleaseMetadata


def calibrate(model_dir: str | Path, data: str | Path | LeafDataset,
              field_photos: str | Path | None = None) -> ReleaseMetadata:
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
    reports = {name: _calibration_report(pred, sweeps[name], threshold) for name, pred in sets.items()}
    return ReleaseMetadata.update(model_dir, temperature=temperature, threshold=threshold, threshold_reason=reason,
                                  calibration=reports)


def _calibration_report(pred: SplitLogits, sweep: list[dict[str, float]], threshold: float) -> dict[str, Any]:
    return {"split": "validation", "n": int(len(pred.labels)),
            "ece_before": calibration.expected_calibration_error(calibration.softmax(pred.logits), pred.labels),
            "ece_after": calibration.expected_calibration_error(pred.probs, pred.labels),
            "at_threshold": calibration.selective(pred.probs, pred.labels, threshold), "sweep": sweep}
