"""Can a correction of the logits undo the tomato-late-blight sink? Measured on a release's out-of-fold scores.

Two corrections of a release's out-of-fold logits on real field photos (`field_out_of_fold.csv`), each fitted
without the fold it is applied to (nested by fold, so every figure is out of fold twice over):
- a field-prior logit adjustment: + tau x log(class share among the other folds' photos), centred;
- a fitted temperature and per-class bias (cross-entropy on the other folds' logits, L2 penalty `reg`).
Printed per setting: top-1, top-3, healthy tomato and pepper leaves right, the share called tomato late blight.
Both would shift every photo's logits, lab photos too, so a release adopting one must also be checked in the lab:
with `--lab-data`, each fitted bias (fitted on every field photo) is applied to the release's lab test logits, and
a bias fitted on the lab validation photos beside the field photos is measured both ways (field nested by fold).

    python scripts/bench_logit_adjustment.py --model efficientnet_lite0 --lab-data ../shared/data/plantvillage --json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from cropdx_hf.evaluation.predictions import logit_columns, read_out_of_fold
from cropdx_hf.evaluation.scores import classification_metrics
from cropdx_hf.release.registry import Releases, resolve_model

HEALTHY = ("Tomato_healthy", "Pepper__bell___healthy")
SINK = "Tomato_Late_blight"


def prior_adjusted(logits: np.ndarray, labels: np.ndarray, train: np.ndarray, tau: float) -> np.ndarray:
    counts = np.bincount(labels[train], minlength=logits.shape[1]) + 1.0  # +1: classes PlantDoc lacks
    prior = np.log(counts / counts.sum())
    return logits + tau * (prior - prior.mean())


def bias_fitted(logits: np.ndarray, labels: np.ndarray, train: np.ndarray, reg: float) -> np.ndarray:
    x, y = torch.as_tensor(logits[train]), torch.as_tensor(labels[train])
    bias, temperature = torch.zeros(logits.shape[1], requires_grad=True), torch.ones(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([bias, temperature], max_iter=200)

    def loss() -> torch.Tensor:
        optimizer.zero_grad()
        value = torch.nn.functional.cross_entropy(x / temperature + bias, y) + reg * (bias ** 2).sum()
        value.backward()
        return value

    optimizer.step(loss)
    return (torch.as_tensor(logits) / temperature + bias).detach().numpy()


def nested(correct, logits: np.ndarray, labels: np.ndarray, folds: np.ndarray, setting: float) -> np.ndarray:
    """Each fold's logits corrected by a correction fitted on the other folds."""
    out = logits.copy()
    for fold in np.unique(folds):
        out[folds == fold] = correct(logits, labels, folds != fold, setting)[folds == fold]
    return out


def lab_figures(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    return classification_metrics(logits.argmax(1), labels)


def in_the_lab(field: np.ndarray, labels: np.ndarray, folds: np.ndarray, names: list[str], lab: dict,
               reg: float) -> dict:
    """The field-only bias on lab test photos, then a bias fitted on lab validation + field photos: field figures
    nested by fold (the lab validation photos in every fit), lab test figures from the fit on every field photo."""
    field_only = bias_fitted(np.concatenate([field, lab["test"][0]]), np.concatenate([labels, lab["test"][1]]),
                             np.arange(len(field) + len(lab["test"][1])) < len(field), reg)[len(field):]
    stacked = np.concatenate([field, lab["validation"][0], lab["test"][0]])
    stacked_labels = np.concatenate([labels, lab["validation"][1], lab["test"][1]])
    part = np.repeat([0, 1, 2], [len(field), len(lab["validation"][1]), len(lab["test"][1])])
    nested_field = field.copy()
    for fold in np.unique(folds):
        train = (part == 1) | ((part == 0) & np.concatenate([folds != fold, np.zeros(len(part) - len(field), bool)]))
        nested_field[folds == fold] = bias_fitted(stacked, stacked_labels, train, reg)[:len(field)][folds == fold]
    joint = bias_fitted(stacked, stacked_labels, part < 2, reg)[part == 2]
    return {"field_bias_on_lab_test": lab_figures(field_only, lab["test"][1]),
            "lab_and_field_bias": {"field_out_of_fold": figures(nested_field, labels, names),
                                   "lab_test": lab_figures(joint, lab["test"][1])}}


def lab_logits(model_dir: Path, data: str, names: list[str]) -> dict:
    from cropdx_hf.data.loading import load_leaf_dataset
    from cropdx_hf.evaluation.predictions import predict_split

    dataset = load_leaf_dataset(data)
    splits = {split: predict_split(model_dir, dataset, split) for split in ("validation", "test")}
    if any(pred.class_names != names for pred in splits.values()):
        raise ValueError(f"{data}: its classes are not the release's out-of-fold classes")
    return {split: (pred.logits.astype(np.float32), pred.labels) for split, pred in splits.items()}


def figures(logits: np.ndarray, labels: np.ndarray, names: list[str]) -> dict[str, float]:
    predicted, top3 = logits.argmax(1), np.argsort(-logits, 1)[:, :3]
    healthy = np.isin(labels, [names.index(c) for c in HEALTHY])
    return {"top1": float((predicted == labels).mean()), "top3": float((top3 == labels[:, None]).any(1).mean()),
            "healthy_right": float((predicted[healthy] == labels[healthy]).mean()),
            "called_tomato_late_blight": float((predicted == names.index(SINK)).mean())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--lab-data", help="the release's lab data: measure each fitted bias on its test split too")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("reports/field"))
    args = parser.parse_args()
    releases = Releases.from_settings() or Releases(Path(__file__).resolve().parents[1] / "models")
    model_dir = resolve_model(args.model, releases)
    table, names = read_out_of_fold(model_dir)
    logits = table[logit_columns(names)].to_numpy(np.float32)
    labels, folds = np.array([names.index(c) for c in table["label"]]), table["fold"].to_numpy()
    report = {"command": "python scripts/bench_logit_adjustment.py " + " ".join(sys.argv[1:]),
              "model": model_dir.name, "photos": len(labels), "as_released": figures(logits, labels, names),
              "field_prior": {str(tau): figures(nested(prior_adjusted, logits, labels, folds, tau), labels, names)
                              for tau in (0.25, 0.5, 1.0)},
              "fitted_bias": {str(reg): figures(nested(bias_fitted, logits, labels, folds, reg), labels, names)
                              for reg in (0.0, 0.01, 0.05)}}
    if args.lab_data:
        lab = lab_logits(model_dir, args.lab_data, names)
        report["lab"] = {"as_released": {split: lab_figures(*lab[split]) for split in lab},
                         **{f"fitted_bias_{reg}": in_the_lab(logits, labels, folds, names, lab, reg)
                            for reg in (0.0, 0.01, 0.05)}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "logit_adjustment.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2) if args.json else json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
