"""Fit the photo-quality check's over-exposure score (cropdx_hf/inference/resources/exposure.json).

A white backdrop makes a photo bright without hiding anything, so brightness alone cannot tell a leaf on white
paper from an over-exposed leaf. The score is a logistic regression (sklearn) on the brightness quantiles of the
subject and of its leaf-coloured pixels (`cropdx_hf.inference.quality.exposure_features`), expanded to degree-2
monomials, fitted with good photos as negatives and their copies 2 EV brighter (in linear light, as
bench_quality.py makes them) as positives: every sixth lab training photo and every real field photo (weighted 3x:
they are the photos a farmer sends, white backdrops and all). The real field photos are scored out of fold
(splits/plantdoc_field_folds.csv); the threshold is the one that flags at most 1.5 % of them, and the model
saved is the one fitted on all the photos. The serving path evaluates it with numpy alone.

    python scripts/fit_exposure.py --data ../shared/data/plantvillage --field-data ../shared/data/plantdoc_field --json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from bench_quality import exposure  # scripts/ is the first entry of sys.path: one +2 EV recipe for both
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler

from cropdx_hf.data.loading import load_leaf_dataset
from cropdx_hf.evaluation.predictions import select_split
from cropdx_hf.inference.quality import EXPOSURE_MODEL, exposure_features, reduced_copy, sampled_rgb
from cropdx_hf.photos import load_image, load_stored_photo

LAB_EVERY = 6  # every sixth lab training photo
FIELD_WEIGHT = 3.0
REGULARIZATION = 0.1  # sklearn's C
FIELD_FLAGGED = 0.015  # share of real field photos (out of fold) the threshold may flag
TRADE_OFF = (0.005, 0.01, 0.015, 0.02, 0.025, 0.03)  # other shares, reported beside it


def features(photos: list) -> np.ndarray:
    return np.array([exposure_features(sampled_rgb(reduced_copy(photo)))[0] for photo in photos])


def fit(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> Pipeline:
    model = make_pipeline(StandardScaler(), PolynomialFeatures(2), StandardScaler(),
                          LogisticRegression(C=REGULARIZATION, max_iter=20000))
    return model.fit(x, y, logisticregression__sample_weight=weights)


def rows(lab: np.ndarray, field: np.ndarray, keep: np.ndarray, copies: dict[str, np.ndarray]):
    """Lab good and +2 EV rows, then the kept field photos' good and +2 EV rows; labels and weights."""
    x = np.concatenate([lab, copies["lab"], field[keep], copies["field"][keep]])
    y = np.r_[np.zeros(len(lab)), np.ones(len(lab)), np.zeros(keep.sum()), np.ones(keep.sum())]
    weights = np.r_[np.ones(2 * len(lab)), np.full(keep.sum(), FIELD_WEIGHT), np.ones(keep.sum())]
    return x, y, weights


def export(model: Pipeline, threshold: float) -> dict:
    first, poly, second, logistic = (step for _, step in model.steps)
    return {"mean": first.mean_.tolist(), "scale": first.scale_.tolist(), "powers": poly.powers_.tolist(),
            "expanded_mean": second.mean_.tolist(), "expanded_scale": second.scale_.tolist(),
            "weights": logistic.coef_[0].tolist(), "bias": float(logistic.intercept_[0]), "threshold": threshold}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--field-data", required=True)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("reports/quality"))
    args = parser.parse_args()
    train = select_split(load_leaf_dataset(args.data), Path("splits/plantvillage.csv"), "train")
    lab_photos = [load_image(image["path"]) for image in train["image"][::LAB_EVERY]]
    field = load_leaf_dataset(args.field_data).rows
    field_photos = [load_stored_photo(image) for image in field["image"]]
    folds_file = pd.read_csv("splits/plantdoc_field_folds.csv").set_index("file")
    folds = folds_file.loc[field["file"], "fold"].to_numpy()
    lab, good = features(lab_photos), features(field_photos)
    copies = {"lab": features([exposure(p, 2) for p in lab_photos]),
              "field": features([exposure(p, 2) for p in field_photos])}
    held_out, held_out_copies = np.zeros(len(good)), np.zeros(len(good))
    for fold in np.unique(folds):
        model = fit(*rows(lab, good, folds != fold, copies))
        held_out[folds == fold] = model.decision_function(good[folds == fold])
        held_out_copies[folds == fold] = model.decision_function(copies["field"][folds == fold])
    threshold = float(np.quantile(held_out, 1 - FIELD_FLAGGED))
    trade_off = [{"flagged": float((held_out > t).mean()), "plus_2_ev_caught": float((held_out_copies > t).mean())}
                 for t in np.quantile(held_out, 1 - np.array(TRADE_OFF))]
    EXPOSURE_MODEL.write_text(json.dumps(export(fit(*rows(lab, good, np.ones(len(good), bool), copies)),
                                                threshold)))
    report = {"command": "python scripts/fit_exposure.py " + " ".join(sys.argv[1:]),
              "lab_photos": len(lab_photos), "field_photos": len(field_photos), "threshold": threshold,
              "field_out_of_fold_flagged": float((held_out > threshold).mean()),
              "field_out_of_fold_plus_2_ev_caught": float((held_out_copies > threshold).mean()),
              "field_out_of_fold_trade_off": trade_off}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fit_exposure.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2) if args.json else
          f"threshold {threshold:.3f}: real field photos flagged {report['field_out_of_fold_flagged']:.1%}, their "
          f"+2 EV copies caught {report['field_out_of_fold_plus_2_ev_caught']:.1%} (out of fold)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
