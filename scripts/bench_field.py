"""How each release does away from the lab: lab test photos, their field proxy and real field photos.

For every release, on the leaf-grouped test split, on its field proxy (each test photo's seeded field-style
view, backgrounds training never saw; `cropdx_hf/field/proxy.py`) and on real field photos (--field-data, scored
out of fold: each photo by the fold model that never saw it, from the release's `field_out_of_fold.csv`):
- the classifier alone: top-1, top-3, macro-F1 (and on real field photos: healthy tomato and pepper leaves called
  healthy, and how many photos are called tomato late blight);
- the product's own path (leaf gate, photo-quality check, calibrated threshold: `Predictor.diagnose_many`, or for
  the out-of-fold logits the same `decide` rule with the release's gate and the photo's checks): how many photos
  are called "not a leaf", "retake" or diagnosed, and how many diagnoses are right;
- non-leaf photos the gate never saw (`non_leaf/holdout`): how many are turned away, how many get a diagnosis;
- other plants' leaves (`other_plants`): how many get a confident diagnosis;
- with --test-time: centre crop (served), the whole photo, flip averaging and five crops + flips, on the
  validation and test proxies.

    python scripts/bench_field.py --data ../shared/data/plantvillage --field-photos field_photos \
        --field-data ../shared/data/plantdoc_field --json

The proxy flatters models trained on composites (same recipe, other scenes): the real field photos are the
measure, the proxy a second opinion.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torchvision import transforms as T

from cropdx_hf.data.loading import LeafDataset, load_leaf_dataset
from cropdx_hf.evaluation.predictions import OUT_OF_FOLD, out_of_fold_split, predict_logits, predict_split, select_split
from cropdx_hf.evaluation.scores import classification_metrics, top_k_accuracy
from cropdx_hf.field.proxy import FieldScenes
from cropdx_hf.inference.diagnosis import decide
from cropdx_hf.inference.predictor import Predictor
from cropdx_hf.inference.quality import assess
from cropdx_hf.modeling.transforms import batch_transform, data_config, set_preprocessing
from cropdx_hf.photos import folder_photos, load_stored_photo, stored_photo
from cropdx_hf.release.registry import Releases, resolve_model
from cropdx_hf.training.leaf_gate import photo_rows

BATCH = 32
RELEASES = Releases.from_settings() or Releases(Path(__file__).resolve().parents[1] / "models")


HEALTHY_FIELD = ("Tomato_healthy", "Pepper__bell___healthy")  # the healthy classes PlantDoc has photos of
SINK = "Tomato_Late_blight"  # the class lab-trained releases called most field photos


def scores(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    return {"top1": float((logits.argmax(-1) == labels).mean()), "top3": top_k_accuracy(logits, labels, 3),
            "macro_f1": classification_metrics(logits.argmax(-1), labels)["macro_f1"], "n": int(len(labels))}


def statuses(results: list, labels: np.ndarray | None, names: list[str]) -> dict[str, float]:
    """Shares of each status and, for labelled photos, how many diagnoses are right."""
    counts = Counter(d.status for d in results)
    out = {f"{status}_share": counts[status] / len(results) for status in ("not_a_leaf", "retake", "diagnosed")}
    if labels is not None:
        right = [d.predictions[0].class_name == names[y] for d, y in zip(results, labels, strict=True)
                 if d.status == "diagnosed"]
        out["answered_accuracy"] = float(np.mean(right)) if right else float("nan")
    return {**out, "n": len(results)}


def through_the_product(predictor: Predictor, rows, labels: np.ndarray | None = None) -> dict[str, float]:
    """Statuses (and, for labelled photos, how many diagnoses are right) from Predictor.diagnose_many."""
    sources = [stored_photo(image) for image in rows["image"]]
    results = [d for i in range(0, len(sources), BATCH) for d in predictor.diagnose_many(sources[i:i + BATCH])]
    return statuses(results, labels, predictor.class_ids)


def real_field(predictor: Predictor, model_dir: Path, field: LeafDataset) -> dict:
    """Real field photos scored out of fold (a release trained on them) or as they are (a release that never saw
    them; `scored` says which): the classifier's figures, and the product's decisions on the same probabilities
    with the release's leaf gate and each photo's quality checks."""
    trained_on_them = (model_dir / OUT_OF_FOLD).is_file()
    pred = out_of_fold_split(model_dir, field) if trained_on_them else predict_split(model_dir, field, "all")
    names, predicted = pred.class_names, pred.logits.argmax(-1)
    healthy = np.isin(pred.labels, [names.index(c) for c in HEALTHY_FIELD])
    classifier = {**scores(pred.logits, pred.labels),
                  "healthy_right": float((predicted[healthy] == pred.labels[healthy]).mean()),
                  "called_tomato_late_blight": float((predicted == names.index(SINK)).mean())}
    results = []
    for start in range(0, len(pred.labels), BATCH):
        photos = [load_stored_photo(image) for image in pred.rows[start:start + BATCH]["image"]]
        leaves = predictor.is_leaf(photos, predictor.forward(photos)[1])
        results += [decide(predictor.name, names, p, predictor.threshold, leaf, quality=assess(photo))
                    for p, leaf, photo in zip(pred.probs[start:start + BATCH], leaves, photos, strict=True)]
    return {"scored": "out_of_fold" if trained_on_them else "never_trained_on", "classifier": classifier,
            "product": statuses(results, pred.labels, names)}


class FlipAverage(torch.nn.Module):
    """Softmax averaged over the photo and its mirror image."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.model(x).softmax(-1) + self.model(x.flip(-1)).softmax(-1)).log()


def ten_crop_logits(model: torch.nn.Module, rows) -> tuple[np.ndarray, np.ndarray]:
    """Log of the mean softmax over five crops of the resized photo and their mirror images (TenCrop)."""
    config = data_config(model)
    size = config["input_size"][-1]
    normalize = T.Compose([T.ToTensor(), T.Normalize(config["mean"], config["std"])])
    crops = T.Compose([T.Resize(int(size / config["crop_pct"]), T.InterpolationMode.BICUBIC), T.TenCrop(size),
                       T.Lambda(lambda views: torch.stack([normalize(view) for view in views]))])
    data = rows.with_transform(batch_transform(crops))
    outputs, labels = [], []
    with torch.inference_mode():
        for start in range(0, len(data), 8):
            batch = data[start:start + 8]
            pixels = torch.stack(batch["pixel_values"])
            probs = model(pixels.flatten(0, 1)).softmax(-1).unflatten(0, pixels.shape[:2]).mean(1)
            outputs.append(probs.log())
            labels += batch["labels"]
    return torch.cat(outputs).numpy(), np.asarray(labels)


def test_time_options(model_dir: Path, sets: dict) -> dict[str, dict]:
    predictor = Predictor.from_folder(model_dir)
    model = predictor.model
    served = data_config(model)
    results = {}
    for option in ("centre", "whole_photo", "flip_average", "ten_crop"):
        results[option] = {}
        for name, rows in sets.items():
            if option == "ten_crop":
                logits, labels = ten_crop_logits(model, rows)
            else:
                set_preprocessing(model, data_config(model, crop_pct=1.0 if option == "whole_photo" else None))
                net = FlipAverage(model) if option == "flip_average" else model
                net.pretrained_cfg = model.pretrained_cfg
                logits, labels = predict_logits(net, rows)
                set_preprocessing(model, served)
            results[option][name] = scores(logits, labels)
    return results


def bench_release(name: str, data, scenes: FieldScenes, photos: Path, test_time: bool,
                  field: LeafDataset | None) -> dict:
    model_dir = resolve_model(name, RELEASES)
    split_csv = model_dir / "split.csv"
    test = select_split(data, split_csv, "test")
    proxy_test = scenes.proxy(test)
    predictor = Predictor.from_folder(model_dir)
    out: dict = {}
    for key, rows in (("lab_test", test), ("field_proxy_test", proxy_test)):
        logits, labels = predict_logits(predictor.model, rows)
        out[key] = {"classifier": scores(logits, labels), "product": through_the_product(predictor, rows, labels)}
    if field is not None:
        out["real_field"] = real_field(predictor, model_dir, field)
    out["non_leaf_holdout"] = through_the_product(predictor, photo_rows(folder_photos(photos / "non_leaf" /
                                                                                       "holdout")))
    out["other_plants"] = through_the_product(predictor, photo_rows(folder_photos(photos / "other_plants")))
    if test_time:
        validation = select_split(data, split_csv, "validation")
        # chosen on the validation proxy, confirmed on the test proxy; an option that pays there would then be
        # checked on lab photos before a release adopted it
        out["test_time"] = test_time_options(model_dir, {"field_proxy_validation": scenes.proxy(validation),
                                                         "field_proxy_test": proxy_test})
    return out


SETS = {"lab_test": "lab test", "field_proxy_test": "field proxy", "real_field": "real field"}
SCORED = {"out_of_fold": "out of fold", "never_trained_on": "never trained on"}


def table(results: dict) -> str:
    """One row per release and set: the classifier, then the product (gate, checks, threshold)."""
    lines = ["| release | photos | top-1 / top-3 | macro-F1 | through the product: not a leaf / retake / diagnosed "
             "(right) |", "|---|---|---|---|---|"]
    for name, r in results.items():
        for key, label in SETS.items():
            if key not in r:
                continue
            c, p = r[key]["classifier"], r[key]["product"]
            label += f", {SCORED[r[key]['scored']]}" if "scored" in r[key] else ""
            lines.append(f"| {name} | {label} ({c['n']}) | {c['top1']:.1%} / {c['top3']:.1%} | {c['macro_f1']:.3f} | "
                         f"{p['not_a_leaf_share']:.1%} / {p['retake_share']:.1%} / {p['diagnosed_share']:.1%} "
                         f"({p['answered_accuracy']:.1%}) |")
        lines.append(f"| {name} | non-leaf holdout ({r['non_leaf_holdout']['n']}) | | | "
                     f"{r['non_leaf_holdout']['not_a_leaf_share']:.1%} / {r['non_leaf_holdout']['retake_share']:.1%} "
                     f"/ {r['non_leaf_holdout']['diagnosed_share']:.1%} |")
        lines.append(f"| {name} | other plants' leaves ({r['other_plants']['n']}) | | | "
                     f"{r['other_plants']['not_a_leaf_share']:.1%} / {r['other_plants']['retake_share']:.1%} / "
                     f"{r['other_plants']['diagnosed_share']:.1%} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--field-photos", required=True, type=Path, help="folder from scripts/field_photos.py")
    parser.add_argument("--field-data", help="the real field photos the releases were cross-validated on")
    parser.add_argument("--models", nargs="*", default=None, help="releases or model folders (default: all releases)")
    parser.add_argument("--test-time", action="store_true", help="also measure test-time options")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--out", type=Path, default=Path("reports/field"), help="where bench_field.json goes")
    args = parser.parse_args()
    torch.set_num_threads(2)
    data = load_leaf_dataset(args.data)
    models = args.models or RELEASES.names()
    split_csv = resolve_model(models[0], RELEASES) / "split.csv"
    scenes = FieldScenes.from_folder(args.field_photos, select_split(data, split_csv, "train"))
    started = time.time()
    field = load_leaf_dataset(args.field_data) if args.field_data else None
    results = {name: bench_release(name, data, scenes, args.field_photos, args.test_time, field) for name in models}
    report = {"command": "python scripts/bench_field.py " + " ".join(sys.argv[1:]), "seconds": round(
        time.time() - started), "cpu_count": os.cpu_count(), "proxy_backgrounds": scenes.proxy_bank.fingerprint,
              "releases": results}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_field.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2) if args.json else table(results))
    (args.out / "bench_field.md").write_text(table(results) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
