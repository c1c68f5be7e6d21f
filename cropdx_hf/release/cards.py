"""Model cards from measured numbers: huggingface_hub `ModelCardData` + a Jinja template, no typed figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from cropdx_hf.errors import ModelFolderError
from cropdx_hf.labels import display_name
from cropdx_hf.modeling.backbones import get_backbone
from cropdx_hf.modeling.config import read_config
from cropdx_hf.modeling.metadata import ReleaseMetadata, TrainingRecord
from cropdx_hf.release.registry import EVAL_DIR, FIELD_DIR, FIELD_PROXY_DIR, STANDS_IN_FOR, Releases, evaluation

TEMPLATE = Path(__file__).parent / "templates" / "model_card.md"
LICENSE = "cc-by-sa-3.0"  # PlantVillage's licence as usually cited; its share-alike terms carry to the weights
# Hub checkpoints of the same TF-ported ImageNet weights. MobileNetV2's are torchvision's IMAGENET1K_V1,
# which no Hub repo holds (timm's mobilenetv2_100.ra_in1k is a different training), so it names none.
BASE_MODELS = {
    "tf_efficientnet_lite0": "timm/tf_efficientnet_lite0.in1k",
    "tf_efficientnet_lite1": "timm/tf_efficientnet_lite1.in1k",
    "tf_efficientnet_lite2": "timm/tf_efficientnet_lite2.in1k",
}


def _eval_results(test: dict[str, Any], field_proxy: dict[str, Any] | None, field: dict[str, Any] | None
                  ) -> list[EvalResult]:
    sets = [("plantvillage", "PlantVillage tomato/potato/pepper (leaf-grouped test split)", "test", test)]
    if field:
        sets.append(("plantdoc", "PlantDoc field photos of tomato/potato/pepper, out of fold (grouped 5-fold)",
                     "train", field))
    if field_proxy:
        sets.append(("plantvillage", "PlantVillage test split as field-style views (cropdx field proxy)", "test",
                     field_proxy))
    return [EvalResult(task_type="image-classification", dataset_type=kind, dataset_name=dataset,
                       dataset_split=split, metric_type=metric, metric_value=round(values[key], 4), metric_name=label)
            for kind, dataset, split, values in sets
            for metric, key, label in (("accuracy", "accuracy", "Accuracy"), ("f1", "macro_f1", "Macro F1"),
                                       ("accuracy", "top3_accuracy", "Top-3 accuracy"))]


def build_card(model_dir: Path, repo_id: str, plots: str = EVAL_DIR) -> ModelCard:
    config = read_config(model_dir)
    meta = ReleaseMetadata.from_config(config)
    name = model_dir.name
    test, field_proxy, field = (evaluation(model_dir), evaluation(model_dir, FIELD_PROXY_DIR),
                                evaluation(model_dir, FIELD_DIR))
    if test is None:
        raise ModelFolderError(f"{model_dir}: no test metrics to put on a card; run `cropdx evaluate --model "
                               f"{model_dir} --data DATA --out {model_dir / EVAL_DIR}` first")
    train_metrics = json.loads((model_dir / "metrics.json").read_text())
    backbone = get_backbone(meta.backbone)
    stand_in = STANDS_IN_FOR.get(name)
    card_data = ModelCardData(
        model_name=name, license=LICENSE, library_name="timm", pipeline_tag="image-classification",
        tags=["image-classification", "timm", "plant-disease", "agriculture", "plantvillage", "safetensors"],
        datasets=["plantvillage", *(["plantdoc"] if meta.field_data else [])],
        base_model=BASE_MODELS.get(config["architecture"]), metrics=["accuracy", "f1"],
        eval_results=_eval_results(test, field_proxy, field),
    )
    training = meta.training
    return ModelCard.from_template(
        card_data, template_path=str(TEMPLATE), name=name, repo_id=repo_id, architecture=config["architecture"],
        stand_in=(f"It stands in for {stand_in}, whose ImageNet weights cannot be downloaded on the machines this "
                  f"model was trained on; its own weights came from {backbone.weights}." if stand_in else
                  f"ImageNet weights: {backbone.weights}."),
        stand_in_limitation=(f"{config['architecture']} stands in for {stand_in}: compare against that backbone "
                             "before assuming the same accuracy." if stand_in else "None beyond the above."),
        threshold=f"{meta.threshold:.2f}", threshold_reason=meta.threshold_reason,
        temperature=f"{meta.temperature:.3f}", calibration=meta.calibration,
        n_images=sum(meta.split_sizes.values()), fingerprint=meta.data_fingerprint,
        split_sizes=", ".join(f"{k} {v:,}" for k, v in meta.split_sizes.items()),
        training=training.options, stages=_stage_lines(train_metrics["stages"], training),
        input_size=config["pretrained_cfg"]["input_size"][-1], crop_pct=config["pretrained_cfg"]["crop_pct"],
        train_size=training.image_size or config["pretrained_cfg"]["input_size"][-1],
        mean=config["pretrained_cfg"]["mean"],
        std=config["pretrained_cfg"]["std"],
        train_minutes=round(sum(info.get("seconds", 0) for info in train_metrics["stages"].values()) / 60, 1),
        hardware="a 2-core CPU", test=test, plots=plots,
        per_class={display_name(class_id): row for class_id, row in test["per_class"].items()},
        export=meta.export and meta.export.report,
        leaf_gate=meta.leaf_gate and meta.leaf_gate.report, field=meta.field_training, field_proxy=field_proxy,
        field_data=meta.field_data, field_oof=field,
        field_per_class={display_name(c): row for c, row in (field or {}).get("per_class", {}).items()},
    )


def _stage_lines(stages: dict[str, dict], training: TrainingRecord) -> list[str]:
    what = {"head": "head only, on cached pooled features",
            "top": f"top {training.top_stages} block stages + head, on cached activations of "
                   f"{training.train_views} augmented views per photo"
                   + (f" (up to {training.max_views} for rare classes)" if training.max_views else ""),
            "full": "all layers, layer-wise learning rates, BatchNorm statistics frozen"}
    lines = []
    # the order the run took them in: a resumed run records the stages it read back before the folds' scores
    order = ("crossval", "head", "top", "full", "interpolation")
    for stage, info in sorted(stages.items(), key=lambda item: order.index(item[0])):
        if stage == "crossval":
            oof = info["out_of_fold"]
            lines.append(f"first, the recipe below once per fold of the real field photos ({info['folds']} folds), "
                         f"each run scoring the fold it left out: out-of-fold top-1 {oof['accuracy']:.4f}, top-3 "
                         f"{oof['top3_accuracy']:.4f} at the chosen weight mix")
            continue
        if stage == "interpolation":
            proxy = info["validation"].get("field_macro_f1")
            lines.append(f"weights mixed back toward the starting release (WiSE-FT): {info['alpha']:g} x trained + "
                         f"{1 - info['alpha']:g} x start, chosen by {info.get('chosen_by', 'validation')}; lab "
                         f"validation macro-F1 {info['validation']['macro_f1']:.4f}"
                         + (f", field-proxy macro-F1 {proxy:.4f}" if proxy is not None else ""))
            continue
        if info.get("skipped"):
            lines.append(f"{what[stage]}: skipped")
            continue
        val = info["validation"]
        lines.append(f"{what[stage]}: {info['trainable_params']:,} trainable parameters, lr {info['lr']:g}, "
                     f"{info.get('epochs_run', info['epochs'])} epochs, {info['seconds'] / 60:.1f} min; validation "
                     f"macro-F1 {val['macro_f1']:.4f}" + (" (kept the previous stage's weights: no gain)"
                                                         if info.get("kept_previous_stage") else ""))
    return lines


def write_cards(releases: Releases, names: list[str], out_dir: str | Path, namespace: str = "cropdx") -> list[Path]:
    """Each release's README.md (the Hub card) and a copy in `out_dir` with plot links into the release."""
    written = []
    for name in names:
        model_dir = releases.path(name)
        repo_id = f"{namespace}/{name}"
        build_card(model_dir, repo_id).save(model_dir / "README.md")
        copy = Path(out_dir) / f"{name}.md"
        copy.parent.mkdir(parents=True, exist_ok=True)
        build_card(model_dir, repo_id, plots=f"../models/{name}/{EVAL_DIR}").save(copy)
        written += [model_dir / "README.md", copy]
    return written
