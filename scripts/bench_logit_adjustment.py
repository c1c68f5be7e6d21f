"""Can a correction of the logits undo the tomato-late-blight sink? Measured on a release's out-of-fold scores.

Two corrections of a release's out-of-fold logits on real field photos (`field_out_of_fold.csv`), each fitted
without the fold it is applied to (nested by fold, so every figure is out of fold twice over):
- a field-prior logit adjustment: + tau x log(class share among the other folds' photos), centred;
- a fitted temperature and per-class bias (cross-entropy on the other folds' logits, L2 penalty `reg`).
Printed per setting: top-1, top-3, healthy tomato and pepper leaves right, the share called tomato late blight.
Both would shift every photo's logits, lab photos too, so a release adopting one must also be checked in the lab.

    python scripts/bench_logit_adjustment.py --model efficientnet_lite0 --json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from cropdx_hf.evaluation.predictions import logit_columns, read_out_of_fold
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


def figures(logits: np.ndarray, labels: np.ndarray, names: list[str]) -> dict[str, float]:
    predicted, top3 = logits.argmax(1), np.argsort(-logits, 1)[:, :3]
    healthy = np.isin(labels, [names.index(c) for c in HEALTHY])
    return {"top1": float((predicted == labels).mean()), "top3": float((top3 == labels[:, None]).any(1).mean()),
            "healthy_right": float((predicted[healthy] == labels[healthy]).mean()),
            "called_tomato_late_blight": float((predicted == names.index(SINK)).mean())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="efficientnet_lite0")
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
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "logit_adjustment.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2) if args.json else json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
