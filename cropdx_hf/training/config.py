"""The training run's options, in three groups read by `cropdx train` through HfArgumentParser (or from
configs/<release>.yaml with `--config`): the model, the data, and the recipe.

Kept apart from the trainer so the command line can build its parser without importing torch.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field


def _option(default, help: str, **kwargs):
    return field(default=default, metadata={"help": help}, **kwargs)


@dataclass(kw_only=True)
class ModelArguments:
    _argument_group_name = "model"
    backbone: str = _option("efficientnet_lite0", "a name from the backbone registry")
    init_from: str | None = _option(None, "model folder to start from instead of ImageNet weights (same backbone "
                                          "and classes), e.g. a release")
    out: str = field(metadata={"help": "model folder to write"})
    drop_rate: float = _option(0.2, "dropout before the classifier")
    top_stages: int = _option(2, "block stages trained in stage 2 (the rest of the trunk stays frozen and cached)")
    image_size: int | None = _option(None, "training resolution (default: the backbone's)")
    full_image_size: int | None = _option(None, "stage-3 training resolution (default: image_size)")
    eval_image_size: int | None = _option(None, "resolution the model is validated, saved and served at (default: "
                                                "the training one)")
    eval_crop_pct: float | None = _option(None, "centre crop at evaluation (default: the backbone's, 0.875 for "
                                                "lite0); 1.0 keeps the whole photo")


@dataclass(kw_only=True)
class DataArguments:
    _argument_group_name = "data"
    data: str = field(metadata={"help": "image folder (class per sub-folder) or Hub dataset id"})
    classes: str = _option("all", "'all', a crop, or comma-separated class names")
    split_csv: str | None = _option(None, "leaf-grouped split to reuse or create (default: OUT/split.csv)")
    field_data: list[str] = field(default_factory=list, metadata={
        "help": "folders of real field photos (class per sub-folder, any known class naming, e.g. "
                "../shared/data/plantdoc_field): trained on beside the lab photos, each with its own augmented views, "
                "and scored out of fold first (--folds)"})
    field_folds: str | None = _option(None, "with --field-data: grouped, stratified folds to reuse or create (default: "
                                            "OUT/field_folds.csv)")
    folds: int = _option(5, "with --field-data: the recipe runs once per fold, without that fold's photos, before the "
                            "final run on all of them; out-of-fold scores choose the weight mix (0: final run only)")
    field_views: int = _option(8, "with --field-data: augmented views cached per real field photo")
    field_share: float = _option(0.5, "with --field-data: share of each epoch's rows drawn from the real field "
                                      "photos' views (with replacement; the rest from the lab views); an epoch "
                                      "draws each field view once on average")
    field_balance: float = _option(0.0, "with --field-data: class balance of the field rows drawn, 0 (as they come) "
                                        "to 1 (every class alike)")
    field_photos: str | None = _option(None, "folder made by scripts/field_photos.py: train on field-style views "
                                             "(leaves cut out and placed in scenes) and validate on the field proxy "
                                             "as well as on lab photos")
    field_lab_share: float = _option(0.2, "with --field-photos: share of training views that keep the lab "
                                          "background")
    train_views: int = _option(2, "augmented views cached per training photo")
    max_views: int | None = _option(None, "rare classes get more cached views: train_views x (median class size / "
                                           "class size), at most this many (default: train_views for every photo)")
    max_train_samples: int | None = _option(None, "cap per split, for smoke runs")
    cache_batch_size: int = _option(8, "batch size while the trunk fills the cache (small batches: big ones spend "
                                       "more time in page faults than in convolutions on CPU)")
    cache_workers: int = _option(1, "DataLoader workers decoding and composing photos while the trunk fills the "
                                    "cache (scripts/bench_layout.py compares 0 and 1)")
    num_workers: int = _option(0, "DataLoader workers of the Trainer's stages")


@dataclass(kw_only=True)
class RecipeArguments:
    _argument_group_name = "recipe"
    epochs_head: float = _option(10, "stage 1: epochs of the head alone, on cached pooled features")
    epochs_top: float = _option(6, "stage 2: epochs of the top block stages and head, on cached activations")
    epochs_full: float = _option(1, "stage 3: epochs of the whole network (0 skips it)")
    lr_head: float = _option(1e-3, "stage 1 learning rate")
    lr_top: float = _option(1e-4, "stage 2 learning rate")
    lr_full_low: float = _option(1e-5, "stage 3 learning rate at the stem (rising linearly towards the head)")
    lr_full_high: float = _option(5e-5, "stage 3 learning rate at the head")
    batch_size: int = _option(32, "training batch size (evaluation uses twice as many)")
    weight_decay: float = _option(0.01, "AdamW weight decay")
    warmup_ratio: float = _option(0.1, "share of each stage's steps spent warming the learning rate up")
    label_smoothing: float = _option(0.1, "label smoothing of the cross-entropy")
    logit_adjustment: float = _option(0.0, "tau of the logit-adjusted loss: rare classes (Potato healthy: 72 "
                                           "training photos, YellowLeaf curl: 1,308) get a larger margin; 0 is plain "
                                           "cross-entropy; the lite0 release uses 0.5")
    ema_decay: float = _option(0.0, "evaluate and keep an exponential moving average of the weights with this "
                                    "decay (0: off)")
    teacher: str | None = _option(None, "model folder (e.g. a larger release) whose predictions on the cached "
                                        "training views the student also learns (knowledge distillation; stages "
                                        "1-2 only)")
    distill_weight: float = _option(0.5, "with --teacher: share of the loss that is the teacher's (the rest is the "
                                         "labels' cross-entropy)")
    distill_temperature: float = _option(2.0, "with --teacher: softmax temperature of the distillation term")
    distill_field: bool = _option(True, "with --teacher and --field-data: the real field photos' views learn the "
                                        "teacher's predictions too; false: their labels alone, so a teacher that "
                                        "is the starting model anchors only the lab rows (learning without "
                                        "forgetting)")
    interpolate: bool = _option(False, "with --init-from: after training, mix the trained and the starting weights "
                                       "(WiSE-FT) in the proportion with the best validation checkpoint score that "
                                       "keeps lab macro-F1 (with --field-data and --folds: the best out-of-fold "
                                       "field top-1 that keeps lab validation macro-F1 at --lab-floor)")
    lab_floor: float | None = _option(None, "with --field-data, --folds and --interpolate: the lowest lab validation "
                                            "macro-F1 (mean over folds) a weight mix may have (default: the starting "
                                            "model's)")
    max_grad_norm: float = _option(1.0, "gradient clipping")
    patience: int = _option(5, "early stopping: evaluations without improvement before a stage stops")
    seed: int = _option(42, "seed of the split, views, initialisation and batches")
    device: str = _option("auto", "auto, cpu or cuda")
    report_to: str = _option("tensorboard", "tensorboard, mlflow, both (comma) or none")
    resume: bool = _option(False, "continue from OUT/checkpoints: finished stages are loaded, the running one "
                                  "resumes")


ARGUMENT_GROUPS = (ModelArguments, DataArguments, RecipeArguments)


@dataclass(kw_only=True)
class TrainConfig(RecipeArguments, DataArguments, ModelArguments):
    """All of a run's options in one object, as the trainer reads them."""

    def published(self) -> dict:
        """The options as a release records them in config.json, which Hub users download: every absolute path
        made relative to the working directory, so no machine's paths are published."""
        return {name: portable_path(value) for name, value in asdict(self).items()}


def portable_path(value):
    """An absolute path (or a list of them) relative to the working directory; any other value as it is."""
    if isinstance(value, list):
        return [portable_path(item) for item in value]
    return os.path.relpath(value) if isinstance(value, str) and os.path.isabs(value) else value
