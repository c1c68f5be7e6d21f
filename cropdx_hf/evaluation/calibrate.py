"""`cropdx calibrate`: fit a release's temperature and abstain threshold, and record them in its metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cropdx_hf.data.loading import LeafDataset, load_leaf_dataset
from cropdx_hf.evaluation import calibration
from cropdx_hf.evaluation.predictions import SplitLogits, out_of_fold_split, predict_split
from cropdx_hf.evaluation.report import plot_tradeoff
from cropdx_hf.modeling.metadata import ReleaseMetadata

TRADEOFF_PLOT = "eval/calibration_tradeoff.png"  # in the model folder: answered against right, per set


def calibrate(model_dir: str | Path, data: str | Path | LeafDataset,
              field_data: str | Path | LeafDataset | None = None) -> ReleaseMetadata:
    """Fit the temperature and choose the abstain threshold on the lab validation split, and on the release's real
    field photos scored out of fold when `field_data` is given (the temperature fits both sets at once; the
    threshold must hold on each). Also plots the trade-off between photos answered and answers right."""
    dataset = data if isinstance(data, LeafDataset) else load_leaf_dataset(data)
    sets = {"lab": predict_split(model_dir, dataset, "validation")}
    if field_data:
        sets["field"] = out_of_fold_split(model_dir, field_data)
    temperature = calibration.fit_temperature(np.concatenate([p.logits for p in sets.values()]),
                                              np.concatenate([p.labels for p in sets.values()]))
    for pred in sets.values():
        pred.temperature = temperature
    sweeps = {name: calibration.threshold_sweep(pred.probs, pred.labels) for name, pred in sets.items()}
    threshold, reason = calibration.choose_threshold(sweeps)
    reports = {name: _calibration_report(name, pred, sweeps[name], threshold) for name, pred in sets.items()}
    plot_tradeoff(sweeps, threshold, Path(model_dir) / TRADEOFF_PLOT)
    return ReleaseMetadata.update(model_dir, temperature=temperature, threshold=threshold, threshold_reason=reason,
                                  calibration=reports)


def _calibration_report(name: str, pred: SplitLogits, sweep: list[dict[str, float]], threshold: float
                        ) -> dict[str, Any]:
    return {"photos": calibration.SETS[name], "n": int(len(pred.labels)),
            "ece_before": calibration.expected_calibration_error(calibration.softmax(pred.logits), pred.labels),
            "ece_after": calibration.expected_calibration_error(pred.probs, pred.labels),
            "at_threshold": calibration.selective(pred.probs, pred.labels, threshold), "sweep": sweep}
