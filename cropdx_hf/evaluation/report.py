"""Plots and report.md for `cropdx evaluate`: every sentence is computed from the predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import confusion_matrix

from cropdx_hf.evaluation import calibration
from cropdx_hf.evaluation.predictions import SplitLogits
from cropdx_hf.labels import display_name, get_class
from cropdx_hf.photos import load_stored_photo

GRID = 16


def write_report(pred: SplitLogits, metrics: dict[str, Any], threshold: float, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    matrix = confusion_matrix(pred.labels, pred.probs.argmax(-1), labels=range(len(pred.class_names)))
    _plot_confusion(matrix, pred.class_names, out / "confusion_matrix.png")
    _plot_grid(pred, correct=True, path=out / "correct.png")
    _plot_grid(pred, correct=False, path=out / "incorrect.png")
    _plot_reliability(pred, out / "reliability.png")
    _plot_sweep(calibration.threshold_sweep(pred.probs, pred.labels), threshold, out / "threshold_sweep.png")
    (out / "report.md").write_text(_report(pred, metrics, matrix, threshold))


def confused_pairs(matrix: np.ndarray, names: list[str], top: int = 5) -> list[dict[str, Any]]:
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    order = np.dstack(np.unravel_index(np.argsort(-off, axis=None), off.shape))[0]
    return [{"true": names[i], "predicted": names[j], "count": int(off[i, j]),
             "rate": float(off[i, j] / max(matrix[i].sum(), 1))} for i, j in order[:top] if off[i, j] > 0]


def _plot_confusion(matrix: np.ndarray, names: list[str], path: Path) -> None:
    normalized = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig = Figure(figsize=(10, 9))
    ax = fig.subplots()
    ax.imshow(normalized, cmap="Blues", vmin=0, vmax=1)
    labels = [display_name(n) for n in names]
    ax.set_xticks(range(len(names)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), labels, fontsize=7)
    for i, j in zip(*np.nonzero(matrix), strict=True):
        ax.text(j, i, f"{normalized[i, j]:.2f}", ha="center", va="center", fontsize=6,
                color="white" if normalized[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix (rows normalised)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def _plot_grid(pred: SplitLogits, correct: bool, path: Path) -> None:
    probs = pred.probs
    predicted, confidence = probs.argmax(-1), probs.max(-1)
    picked = np.nonzero((predicted == pred.labels) == correct)[0]
    # mistakes: the most confident first (the dangerous ones); right answers: an even spread
    picked = picked[np.argsort(-confidence[picked])][:GRID] if not correct else \
        picked[np.linspace(0, len(picked) - 1, min(GRID, len(picked))).astype(int)] if len(picked) else picked
    fig = Figure(figsize=(12, 13))
    axes = fig.subplots(4, 4)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), picked, strict=False):
        image = pred.rows[int(i)]["image"]
        ax.imshow(load_stored_photo(image).resize((160, 160)))
        ax.set_title(f"true: {display_name(pred.class_names[pred.labels[i]])}\n"
                     f"pred: {display_name(pred.class_names[predicted[i]])} ({confidence[i]:.0%})",
                     fontsize=7, color="green" if correct else "red")
    fig.suptitle(f"{'Correct' if correct else 'Incorrect'} predictions ({len(picked)} shown)")
    fig.tight_layout()
    fig.savefig(path, dpi=70)


def _plot_reliability(pred: SplitLogits, path: Path) -> None:
    fig = Figure(figsize=(6, 6))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    curves = ((calibration.softmax(pred.logits), "before"), (pred.probs, f"after (T={pred.temperature:.2f})"))
    for probs, label in curves:
        bins = calibration.reliability_bins(probs, pred.labels)
        ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o-", label=label)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title("Reliability diagram")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def _plot_sweep(sweep: list[dict[str, float]], threshold: float, path: Path) -> None:
    fig = Figure(figsize=(7, 5))
    ax = fig.subplots()
    ax.plot([r["threshold"] for r in sweep], [r["coverage"] for r in sweep], label="coverage (answered)")
    ax.plot([r["threshold"] for r in sweep], [r["selective_accuracy"] for r in sweep], label="accuracy of answered")
    ax.axvline(threshold, color="grey", linestyle=":", label=f"threshold {threshold:.2f}")
    ax.set_xlabel("calibrated confidence threshold")
    ax.set_title("Threshold sweep")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def plot_tradeoff(sweeps: dict[str, list[dict[str, float]]], threshold: float, path: Path) -> None:
    """Share of photos answered against the accuracy of those answers, one curve per set, as the threshold
    rises; the chosen threshold marked on each."""
    fig = Figure(figsize=(7, 5))
    ax = fig.subplots()
    for name, sweep in sweeps.items():
        line = ax.plot([r["coverage"] for r in sweep], [r["selective_accuracy"] for r in sweep], label=name)[0]
        chosen = calibration.selective_at(sweep, threshold)
        ax.plot(chosen["coverage"], chosen["selective_accuracy"], "o", color=line.get_color())
    ax.set_xlabel("share of photos answered")
    ax.set_ylabel("accuracy of the answered photos")
    ax.set_title(f"Answered against right, threshold {threshold:.2f} marked")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)


def _report(pred: SplitLogits, m: dict[str, Any], matrix: np.ndarray, threshold: float) -> str:
    pairs = confused_pairs(matrix, pred.class_names)
    errors = int(matrix.sum() - np.trace(matrix))
    cross_crop = sum(p["count"] for p in confused_pairs(matrix, pred.class_names, top=matrix.size)
                     if get_class(p["true"]).crop != get_class(p["predicted"]).crop)
    worst = sorted(m["per_class"].items(), key=lambda kv: kv[1]["recall"])[:3]
    wrong = pred.probs.argmax(-1) != pred.labels
    abstained_wrong = int((wrong & (pred.probs.max(-1) < threshold)).sum())
    at = m["at_threshold"]
    lines = [
        "# Evaluation report", "",
        f"{m['n']:,} photos: accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}, "
        f"top-3 accuracy {m['top3_accuracy']:.4f}.", "",
        "| plot | file |", "|---|---|",
        *[f"| {t} | ![{t}]({f}) |" for t, f in (("confusion matrix", "confusion_matrix.png"),
                                               ("correct", "correct.png"), ("incorrect", "incorrect.png"),
                                               ("reliability", "reliability.png"),
                                               ("threshold sweep", "threshold_sweep.png"))],
        "", "## Most-confused pairs", "",
        *([f"- {p['true']} → {p['predicted']}: {p['count']} ({p['rate']:.1%} of that class)" for p in pairs]
          or ["- none: every photo was classified correctly"]),
        "", "## Error analysis", "",
        f"- {errors} wrong answers; {cross_crop} of them name the wrong crop.",
        "- Lowest recall: " + ", ".join(f"{n} {v['recall']:.3f} (n={v['support']})" for n, v in worst) + ".",
        f"- Calibration: ECE {m['ece_before_calibration']:.4f} before, {m['ece_after_calibration']:.4f} after "
        f"temperature {m['temperature']:.3f}.",
        f"- At the threshold {threshold:.2f}: {at['coverage']:.1%} of photos answered, "
        f"{at['selective_accuracy']:.2%} of those right; {abstained_wrong} of {errors} wrong answers would have "
        "been replaced by \"retake the photo\".",
    ]
    if m["mean_confidence_wrong"] is not None:
        lines.append(f"- Mean calibrated confidence: {m['mean_confidence_right']:.1%} on right answers, "
                     f"{m['mean_confidence_wrong']:.1%} on wrong ones.")
    return "\n".join(lines) + "\n"
