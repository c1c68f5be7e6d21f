"""Exploration report for a leaf dataset: charts, stats JSON and insights computed from the numbers."""

from __future__ import annotations

import io
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend
from PIL import Image

from cropdx_hf.data.loading import LeafDataset
from cropdx_hf.labels import get_class
from cropdx_hf.photos import load_stored_photo

CROP_COLORS = {"Tomato": "#d62728", "Potato": "#8c564b", "Bell pepper": "#2ca02c"}
SAMPLES_PER_CLASS = 40  # enough for stable colour statistics, cheap to decode
THUMB = 64
BORDER = 4  # pixels at the edge taken as background


def write_eda(data: LeafDataset, out_dir: str | Path, seed: int = 42) -> dict[str, Any]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sample = _sample_rows(data, seed)
    thumbs = {cls: [_thumb(row["image"]) for row in rows] for cls, rows in sample.items()}
    stats = _stats(data, thumbs)
    (out / "stats.json").write_text(json.dumps(stats, indent=2))
    _plot_distribution(stats["counts"], out / "class_distribution.png")
    _plot_grid(sample, out / "samples.png", seed)
    (out / "report.md").write_text(_report(stats))
    return stats


def _sample_rows(data: LeafDataset, seed: int) -> dict[str, list[dict]]:
    rng = random.Random(seed)
    by_class: dict[str, list[int]] = {c: [] for c in data.class_names}
    for i, label in enumerate(data.rows["label"]):
        by_class[data.class_names[label]].append(i)
    return {c: [data.rows[i] for i in rng.sample(idx, min(SAMPLES_PER_CLASS, len(idx)))]
            for c, idx in by_class.items()}


def _thumb(image: dict) -> np.ndarray:
    pil = load_stored_photo(image)
    return np.asarray(pil.resize((THUMB, THUMB)), dtype=np.float32) / 255.0


def _stats(data: LeafDataset, thumbs: dict[str, list[np.ndarray]]) -> dict[str, Any]:
    labels = [data.class_names[i] for i in data.rows["label"]]
    counts = dict(sorted(Counter(labels).items(), key=lambda kv: -kv[1]))
    groups = Counter(data.rows["leaf_group"])
    sizes = Counter(_image_size(img) for img in data.rows.select_columns("image").to_iterable_dataset())
    return {
        "n_images": len(labels),
        "n_classes": len(counts),
        "counts": counts,
        "counts_by_crop": dict(Counter(get_class(c).crop for c in labels)),
        "imbalance_ratio": round(max(counts.values()) / min(counts.values()), 2),
        "image_sizes": {f"{w}x{h}": n for (w, h), n in sizes.most_common()},
        "corrupt_files": data.corrupt_files,
        "skipped_classes": data.skipped_classes,
        "leaf_groups": {
            "n_groups": len(groups),
            "photos_per_group_mean": round(len(labels) / len(groups), 2),
            "photos_per_group_max": max(groups.values()),
        },
        "background": _background_stats(thumbs),
        "look_alikes": _look_alikes(thumbs),
        "fingerprint": data.fingerprint,
    }


def _image_size(row: dict) -> tuple[int, int]:
    image = row["image"]
    source = io.BytesIO(image["bytes"]) if image.get("bytes") else image["path"]
    with Image.open(source) as img:  # header only: no decode
        return img.size


def _background_stats(thumbs: dict[str, list[np.ndarray]]) -> dict[str, Any]:
    """How uniform the photo borders are, and how much their colour alone differs between classes."""
    border_std, class_means = [], {}
    for cls, images in thumbs.items():
        borders = [np.concatenate([t[:BORDER].reshape(-1, 3), t[-BORDER:].reshape(-1, 3),
                                   t[:, :BORDER].reshape(-1, 3), t[:, -BORDER:].reshape(-1, 3)]) for t in images]
        border_std += [float(b.std(axis=0).mean()) for b in borders]
        class_means[cls] = np.mean([b.mean(axis=0) for b in borders], axis=0)
    brightness = {c: round(float(m.mean()), 3) for c, m in class_means.items()}
    return {
        "uniform_fraction": round(float(np.mean(np.array(border_std) < 0.08)), 3),
        "median_border_std": round(float(np.median(border_std)), 4),
        "border_brightness_by_class": brightness,
        "border_brightness_range": round(max(brightness.values()) - min(brightness.values()), 3),
    }


def _look_alikes(thumbs: dict[str, list[np.ndarray]]) -> list[dict[str, Any]]:
    """Cross-crop class pairs by similarity of colour distribution (centre crop, 8x8x8 RGB bins)."""
    hists = {}
    for cls, images in thumbs.items():
        centre = np.concatenate([t[16:48, 16:48].reshape(-1, 3) for t in images])
        hist, _ = np.histogramdd(centre, bins=8, range=[(0, 1)] * 3)
        hists[cls] = hist.ravel() / np.linalg.norm(hist)
    pairs = []
    names = list(hists)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if get_class(a).crop != get_class(b).crop:
                pairs.append({"a": a, "b": b, "similarity": round(float(hists[a] @ hists[b]), 3),
                              "same_disease": not get_class(a).healthy
                              and get_class(a).disease == get_class(b).disease})
    return sorted(pairs, key=lambda p: -p["similarity"])


def _plot_distribution(counts: dict[str, int], path: Path) -> None:
    names = list(counts)[::-1]
    fig = Figure(figsize=(9, 6))
    ax = fig.subplots()
    ax.barh(names, [counts[n] for n in names], color=[CROP_COLORS[get_class(n).crop] for n in names])
    for crop, color in CROP_COLORS.items():
        ax.bar(0, 0, color=color, label=crop)
    ax.set_xlabel("images")
    ax.set_title("Images per class")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def _plot_grid(sample: dict[str, list[dict]], path: Path, seed: int) -> None:
    rows = [r for rs in sample.values() for r in rs[:2]]
    random.Random(seed).shuffle(rows)
    fig = Figure(figsize=(10, 11))
    axes = fig.subplots(5, 5)
    for ax, row in zip(axes.ravel(), rows, strict=False):
        cls = get_class(row["file"].split("/")[0])
        ax.imshow(load_stored_photo(row["image"]).resize((128, 128)))
        ax.set_title(f"{cls.crop}\n{cls.disease}", fontsize=8)
    for ax in axes.ravel():
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=70)


def _report(stats: dict[str, Any]) -> str:
    counts, bg, groups = stats["counts"], stats["background"], stats["leaf_groups"]
    largest, smallest = next(iter(counts)), list(counts)[-1]
    look = stats["look_alikes"]
    rank = {(p["a"], p["b"]): i for i, p in enumerate(look, 1)}
    same = [p for p in look if p["same_disease"]]
    lines = [
        "# Exploration report", "",
        f"{stats['n_images']:,} images in {stats['n_classes']} classes; dataset fingerprint "
        f"`{stats['fingerprint'][:16]}…`; {len(stats['corrupt_files'])} unreadable file(s) skipped.", "",
        "![class distribution](class_distribution.png)", "", "![samples](samples.png)", "",
        "## Insights (computed by `cropdx eda`)", "",
        f"1. **Imbalance.** {largest} has {counts[largest]:,} images and {smallest} only {counts[smallest]:,} "
        f"(ratio {stats['imbalance_ratio']}:1). Accuracy alone hides the small classes: report macro-F1 "
        "and per-class recall.",
        f"2. **Leaf groups.** {groups['n_groups']:,} leaf groups, {groups['photos_per_group_mean']} photos "
        f"each on average (up to {groups['photos_per_group_max']}). A per-image split would put photos of "
        "one leaf in train and test; split by group.",
        f"3. **Cross-crop look-alikes.** By centre-crop colour histogram the closest of {len(look)} cross-crop "
        f"pairs is {look[0]['a']} / {look[0]['b']} (cosine {look[0]['similarity']}). Diseases named in two "
        "crops: " + "; ".join(f"{p['a']} / {p['b']} (cosine {p['similarity']}, rank {rank[(p['a'], p['b'])]})"
                               for p in same)
        + ". Confusions between crops are likely where colour is this close; check them in the confusion matrix.",
        f"4. **Uniform lab background.** {bg['uniform_fraction']:.0%} of sampled photos have a near-uniform "
        f"border (median border std {bg['median_border_std']}), and mean border brightness differs between "
        f"classes by up to {bg['border_brightness_range']}. A model can learn the background instead of the "
        "disease, and field photos will look very different: measure on field photos before trusting it.",
        "", "## Image sizes", "",
        *[f"- {size}: {n:,}" for size, n in list(stats["image_sizes"].items())[:5]],
    ]
    return "\n".join(lines) + "\n"
