"""`cropdx evaluate`: one model on one set of labelled photos, written as metrics.json, plots and report.md."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cropdx_hf.data.loading import LeafDataset
from cropdx_hf.evaluation.predictions import out_of_fold_split, predict_split
from cropdx_hf.evaluation.report import write_report
from cropdx_hf.evaluation.scores import full_metrics, quality_flags, write_metrics
from cropdx_hf.modeling.metadata import ReleaseMetadata

PROXY_PHOTOS = "field proxy: each photo's seeded field-style view (cropdx_hf/field/proxy.py)"
OUT_OF_FOLD_PHOTOS = "real field photos, each scored by the fold model that never saw it (out of fold)"


@dataclass(frozen=True)
class EvaluationSettings:
    """Which photos are scored and how: the split, a preprocessing override, the field proxy or out-of-fold scores."""

    split: str = "auto"
    image_size: int | None = None
    crop_pct: float | None = None
    field_photos: str | None = None
    out_of_fold: bool = False


def evaluate_model(model_dir: str | Path, data: str | Path | LeafDataset, out: str | Path,
                   settings: EvaluationSettings = EvaluationSettings()) -> dict[str, Any]:
    """Score the photos, write OUT/metrics.json and OUT/report.md with its plots, and return the metrics."""
    threshold = ReleaseMetadata.read(model_dir).threshold
    pred = out_of_fold_split(model_dir, data) if settings.out_of_fold else predict_split(
        model_dir, data, settings.split, settings.image_size, settings.crop_pct, settings.field_photos)
    metrics = {**full_metrics(pred, threshold), "skipped_classes": pred.skipped_classes,
               "quality_flags": quality_flags(pred.rows)}
    if settings.image_size or settings.crop_pct:
        metrics["preprocessing_override"] = {"image_size": settings.image_size, "crop_pct": settings.crop_pct}
    if settings.field_photos:
        metrics["photos"] = PROXY_PHOTOS
    if settings.out_of_fold:
        metrics["photos"] = OUT_OF_FOLD_PHOTOS
    write_metrics(Path(out) / "metrics.json", metrics)
    write_report(pred, metrics, threshold, Path(out))
    return metrics
