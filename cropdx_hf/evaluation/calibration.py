"""Temperature scaling, expected calibration error and the abstain-threshold sweep.

Softmax confidences of fine-tuned CNNs run high; one temperature fitted on validation logits (Guo et al.
2017) fixes most of it without changing any prediction. The abstain threshold then applies to calibrated
probabilities, so "70 %" means roughly 70 % right.
"""

from __future__ import annotations

import numpy as np
import torch

from cropdx_hf.modeling.metadata import DEFAULT_THRESHOLD

# accuracy of answered photos each set must reach at the chosen threshold: lab validation photos, and real field
# photos scored out of fold (a farmer's "diagnosed" must be right at least 9 times in 10)
TARGETS = {"lab": 0.995, "field": 0.90}
SETS = {"lab": "lab validation photos", "field": "real field photos scored out of fold"}
# of lab validation photos a threshold must still answer (choose_threshold): the lab holdout must stay at least 94 %
# answered, and lab test coverage has run within a point of validation's
MIN_LAB_COVERAGE = 0.95
SWEEP = np.round(np.arange(0.30, 1.00, 0.01), 2)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return torch.from_numpy(np.asarray(logits, dtype=np.float64) / temperature).softmax(-1).numpy()


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimising validation NLL (LBFGS on log T, so T stays positive)."""
    x = torch.from_numpy(np.asarray(logits, dtype=np.float64))
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(x / log_t.exp(), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp())


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Weighted mean |accuracy - confidence| over equal-width confidence bins (top-1)."""
    confidence, correct = probs.max(-1), probs.argmax(-1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        in_bin = (confidence > low) & (confidence <= high)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def reliability_bins(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> list[dict[str, float]]:
    confidence, correct = probs.max(-1), probs.argmax(-1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    rows = []
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        in_bin = (confidence > low) & (confidence <= high)
        if in_bin.any():
            rows.append({"low": float(low), "high": float(high), "count": int(in_bin.sum()),
                         "confidence": float(confidence[in_bin].mean()), "accuracy": float(correct[in_bin].mean())})
    return rows


def selective(probs: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    """Coverage (share answered) and accuracy of the answered photos at one threshold."""
    answered = probs.max(-1) >= threshold
    correct = probs.argmax(-1) == labels
    return {"threshold": float(threshold), "coverage": float(answered.mean()),
            "selective_accuracy": float(correct[answered].mean()) if answered.any() else float("nan")}


def selective_at(sweep: list[dict[str, float]], threshold: float) -> dict[str, float]:
    """The sweep row of the highest swept threshold not above `threshold`."""
    return max((row for row in sweep if row["threshold"] <= threshold), key=lambda row: row["threshold"])


def threshold_sweep(probs: np.ndarray, labels: np.ndarray) -> list[dict[str, float]]:
    return [selective(probs, labels, t) for t in SWEEP]


def choose_threshold(sweeps: dict[str, list[dict[str, float]]]) -> tuple[float, str]:
    """The lowest threshold at which the answered photos of every set reach that set's target accuracy
    (TARGETS: lab and, when measured, real field photos out of fold), never below the 0.70 floor.

    Lab validation photos flatter a model: peers found wrong answers averaging 69.6 % confidence, so the
    floor stays even where validation alone would allow a lower threshold. The field target is the one
    that costs coverage: field photos are where a confident wrong answer is likeliest. A threshold that reaches it
    (or comes closest) only by answering fewer than MIN_LAB_COVERAGE of the lab photos would turn lab-quality
    photos away, so then the threshold is the highest that still answers that share and reaches the lab target
    (the field answers as accurate as the lab allows), and the reason says the field target was not reached.
    """
    thresholds = [row["threshold"] for row in next(iter(sweeps.values()))]
    chosen, reason = _lowest_reaching(thresholds, sweeps)
    if len(sweeps) > 1 and selective_at(sweeps["lab"], chosen)["coverage"] < MIN_LAB_COVERAGE:
        lab_only, lab_reason = _lowest_reaching(thresholds, {"lab": sweeps["lab"]})
        covering = [row["threshold"] for row in sweeps["lab"]
                    if row["coverage"] >= MIN_LAB_COVERAGE and row["threshold"] >= DEFAULT_THRESHOLD]
        chosen = max([lab_only, *covering])
        field_short = (f"the field target of {TARGETS['field']:.0%} on answered {SETS['field']} needs a threshold "
                       f"that answers fewer than {MIN_LAB_COVERAGE:.0%} of {SETS['lab']}")
        reason = (f"{field_short}; {chosen:.2f} is the highest that answers that share and reaches "
                  f"{TARGETS['lab']:.1%} on them, so the field target is not reached" if chosen in covering
                  else f"{field_short}, and so does the lab target: {lab_reason}")
    return chosen, reason


def _lowest_reaching(thresholds: list[float], sweeps: dict[str, list[dict[str, float]]]) -> tuple[float, str]:
    reaching = [t for i, t in enumerate(thresholds)
                if all(sweep[i]["selective_accuracy"] >= TARGETS[name] for name, sweep in sweeps.items())]
    goals = " and ".join(f"{TARGETS[name]:.1%} on answered {SETS[name]}"
                         for name in sweeps)
    if not reaching:
        answered = [i for i, t in enumerate(thresholds) if t >= DEFAULT_THRESHOLD
                    and not any(np.isnan(sweep[i]["selective_accuracy"]) for sweep in sweeps.values())]
        if not answered:
            return DEFAULT_THRESHOLD, f"no threshold reached {goals}; the {DEFAULT_THRESHOLD:.2f} floor applies"
        best = max(answered, key=lambda i: (min(sweep[i]["selective_accuracy"] - TARGETS[name]
                                                for name, sweep in sweeps.items()), thresholds[i]))
        return float(thresholds[best]), (f"no threshold reached {goals}; {thresholds[best]:.2f} came closest "
                                         "(the highest of equals, never below the floor)")
    lowest = reaching[0]
    chosen = max(lowest, DEFAULT_THRESHOLD)
    if lowest < DEFAULT_THRESHOLD:
        return float(chosen), (f"the lowest threshold reaching {goals} is {lowest:.2f}; the "
                               f"{DEFAULT_THRESHOLD:.2f} floor applies because lab photos overstate field confidence")
    return float(chosen), f"{chosen:.2f} is the lowest threshold reaching {goals}"
