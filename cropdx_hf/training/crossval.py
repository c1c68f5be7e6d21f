"""Out-of-fold scores on real field photos: the recipe trained K times, each time without one fold of them.

Every field photo is then scored by a model that never saw it or its near-duplicates, so the out-of-fold figures
say how the recipe does on a farmer's photo, and the weight-space mix (WiSE-FT) is chosen on them: the share of the
trained weights with the best out-of-fold top-1 among the shares that keep lab validation macro-F1 at or above
the floor. The final model trains on every field photo with that recipe and that share. The folds share one
activation cache, since the frozen trunk sees every photo the same way in every fold.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from cropdx_hf.evaluation.predictions import logit_columns
from cropdx_hf.evaluation.scores import classification_metrics, top_k_accuracy

if TYPE_CHECKING:
    from cropdx_hf.training.trainer import StagedTrainer

logger = logging.getLogger(__name__)
FOLD_RESULT = "fold{k}.npz"


@dataclass
class FoldResult:
    """One fold's held-out field photos (row indices), their logits per weight share, and lab validation
    macro-F1 per weight share."""

    rows: np.ndarray
    logits: dict[float, np.ndarray]
    lab_macro_f1: dict[float, float]

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        alphas = sorted(self.logits)
        np.savez(path, rows=self.rows, alphas=np.array(alphas), logits=np.stack([self.logits[a] for a in alphas]),
                 lab_macro_f1=np.array([self.lab_macro_f1[a] for a in alphas]))

    @classmethod
    def load(cls, path: Path) -> FoldResult:
        saved = np.load(path)
        alphas = [float(a) for a in saved["alphas"]]
        return cls(saved["rows"], dict(zip(alphas, saved["logits"], strict=True)),
                   dict(zip(alphas, saved["lab_macro_f1"].tolist(), strict=True)))


def cross_validate(trainer: StagedTrainer) -> dict:
    """Train and score every fold (a fold a resumed run already scored is read back), choose the weight share,
    and leave the trainer at its starting weights with every field photo in training."""
    folder = Path(trainer.cfg.out) / "crossval"
    results = []
    for fold in range(trainer.cfg.folds):
        path = folder / FOLD_RESULT.format(k=fold)
        if trainer.cfg.resume and path.is_file():
            logger.info("resume: fold %d already scored", fold)
            results.append(FoldResult.load(path))
            continue
        trainer.restart(held_out=fold)
        for stage in ("head", "top"):
            trainer.run_stage(stage)
        result = trainer.score_held_out()
        if trainer.state.is_main_process:
            result.save(path)
        results.append(result)
    trainer.restart(held_out=None)
    return summarize(results, trainer.field_labels, trainer.cfg.lab_floor)


def summarize(results: list[FoldResult], labels: np.ndarray, lab_floor: float | None) -> dict:
    """Out-of-fold metrics per weight share, the chosen share, and the out-of-fold logits at that share."""
    alphas = sorted(results[0].logits, reverse=True)
    logits = {alpha: out_of_fold_logits(results, alpha, len(labels)) for alpha in alphas}
    candidates = {alpha: {**field_metrics(logits[alpha], labels),
                          "lab_validation_macro_f1": float(np.mean([r.lab_macro_f1[alpha] for r in results]))}
                  for alpha in alphas}
    if lab_floor is None:  # no lab regression: the starting weights' own lab validation macro-F1
        lab_floor = candidates[min(alphas)]["lab_validation_macro_f1"]
    kept = [a for a in alphas if candidates[a]["lab_validation_macro_f1"] >= lab_floor] or [min(alphas)]
    chosen = max(kept, key=lambda a: (candidates[a]["accuracy"], candidates[a]["lab_validation_macro_f1"]))
    return {"folds": len(results), "lab_floor": lab_floor, "alpha": chosen, "out_of_fold": candidates[chosen],
            "candidates": {str(a): m for a, m in candidates.items()},
            "logits": logits[chosen]}


def out_of_fold_logits(results: list[FoldResult], alpha: float, photos: int) -> np.ndarray:
    logits = np.full((photos, results[0].logits[alpha].shape[1]), np.nan, dtype=np.float32)
    for result in results:
        logits[result.rows] = result.logits[alpha]
    if np.isnan(logits).any():
        raise ValueError(f"{int(np.isnan(logits).any(-1).sum())} field photo(s) in no scored fold")
    return logits


def field_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    predicted = logits.argmax(-1)
    return {**classification_metrics(predicted, labels), "top3_accuracy": top_k_accuracy(logits, labels, 3),
            "n": int(len(labels))}


def write_out_of_fold(path: Path, files: list[str], labels: list[str], folds: list[int], logits: np.ndarray,
                      class_names: list[str]) -> None:
    """One row per field photo: its file, true class, fold, and the out-of-fold logits (one column per class)."""
    import pandas as pd

    table = pd.DataFrame(logits, columns=logit_columns(class_names))
    table.insert(0, "fold", folds)
    table.insert(0, "label", labels)
    table.insert(0, "file", files)
    table.to_csv(path, index=False, float_format="%.5f")


def weights_at(start: dict[str, torch.Tensor], trained: dict[str, torch.Tensor], alpha: float
               ) -> dict[str, torch.Tensor]:
    """alpha x trained + (1 - alpha) x start for float tensors; counters come from the trained weights."""
    return {k: v.lerp(trained[k], alpha) if v.is_floating_point() else trained[k] for k, v in start.items()}
