"""`cropdx train`: the three-stage fine-tuning recipe, each stage one `transformers.Trainer` run.

1. head only (lr 1e-3) on pooled features of the frozen network, cached once;
2. the top block stages + head (lr 1e-4) on cached trunk activations of augmented views;
3. all layers (1e-5 at the stem rising to 5e-5 at the head) on augmented images, optionally at a lower
   resolution.
Stages 1-2 never run the trunk during training, which is what makes a release model affordable on a
2-core CPU. Every stage: AdamW, cosine schedule with warm-up, label smoothing, gradient clipping, early stopping
and best checkpoint by validation macro-F1; optionally (all off by default) a logit-adjusted loss for the uneven
classes, more cached views of rare classes, a moving average of the weights, and validation at a larger size.
"""

from __future__ import annotations

import functools
import json
import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import datasets
import numpy as np
import torch
from accelerate import PartialState
from safetensors.torch import load_file, save_file
from transformers import EarlyStoppingCallback, Trainer, TrainerCallback, TrainingArguments, set_seed

from cropdx_hf.data.folds import FOLDS, fold_rows
from cropdx_hf.data.loading import dataset_fingerprint, load_field_rows, load_leaf_dataset
from cropdx_hf.data.splits import split_dataset
from cropdx_hf.errors import ModelFolderError
from cropdx_hf.evaluation.predictions import OUT_OF_FOLD, predict_logits
from cropdx_hf.evaluation.scores import classification_metrics, evaluate_rows
from cropdx_hf.field.composite import FieldStyle, FieldViews
from cropdx_hf.field.proxy import FieldScenes
from cropdx_hf.modeling.backbones import create_backbone
from cropdx_hf.modeling.config import class_ids
from cropdx_hf.modeling.folder import load_model_folder, save_model_folder
from cropdx_hf.modeling.metadata import ReleaseMetadata, TrainingRecord
from cropdx_hf.modeling.transforms import batch_transform, data_config, eval_transform, set_preprocessing
from cropdx_hf.training import model_parts
from cropdx_hf.training.config import TrainConfig, portable_path
from cropdx_hf.training.crossval import FoldResult, cross_validate, weights_at, write_out_of_fold
from cropdx_hf.training.distill import Teacher, distillation_loss
from cropdx_hf.training.feature_cache import CachedActivations, cache_activations
from cropdx_hf.training.sampling import MixedTrainer, epoch_draws, row_weights
from cropdx_hf.training.views import field_train_transform, real_photo_transform, train_transform
from cropdx_hf.training.weight_average import WeightAverageCallback

logger = logging.getLogger(__name__)
STAGES = ("head", "top", "full")
INTERPOLATION = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.0)  # shares of the trained weights tried by --interpolate
STAGE_DONE = "stage_final.safetensors"


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda, but no CUDA device is visible")
    return device


def _training_args(cfg: TrainConfig, checkpoints: Path, stage: str, epochs: float, lr: float, device: str,
                   best_checkpoint: bool = True) -> TrainingArguments:
    runs = Path(cfg.out) / "runs" / checkpoints.relative_to(Path(cfg.out) / "checkpoints")
    return TrainingArguments(
        output_dir=str(checkpoints / stage),
        logging_dir=str(runs / stage),
        num_train_epochs=epochs,
        learning_rate=lr,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size * 2,
        lr_scheduler_type="cosine",
        warmup_ratio=cfg.warmup_ratio,
        weight_decay=cfg.weight_decay,
        label_smoothing_factor=cfg.label_smoothing,
        max_grad_norm=cfg.max_grad_norm,
        eval_strategy="epoch" if best_checkpoint else "no",  # with field photos the epochs run to the end
        save_strategy="epoch",
        save_total_limit=2,
        load_best_model_at_end=best_checkpoint,
        metric_for_best_model="checkpoint_score",
        greater_is_better=True,
        logging_steps=20,
        seed=cfg.seed,
        use_cpu=device == "cpu",
        fp16=device == "cuda",
        dataloader_num_workers=cfg.num_workers,
        remove_unused_columns=False,
        report_to=[r for r in cfg.report_to.split(",") if r and r != "none"],
    )


def _compute_metrics(eval_pred, lab_rows: int | None = None) -> dict[str, float]:
    """Lab metrics; with a field proxy appended after the first `lab_rows` rows, its metrics too. The checkpoint
    score is lab macro-F1, or the mean of lab and field-proxy macro-F1: a checkpoint must hold up in both."""
    logits, labels = eval_pred
    predicted, labels = np.asarray(logits).argmax(-1), np.asarray(labels)
    lab_rows = len(labels) if lab_rows is None else lab_rows
    metrics = classification_metrics(predicted[:lab_rows], labels[:lab_rows])
    if lab_rows == len(labels):
        return {**metrics, "checkpoint_score": metrics["macro_f1"]}
    field = classification_metrics(predicted[lab_rows:], labels[lab_rows:])
    return {**metrics, **{f"field_{k}": v for k, v in field.items()},
            "checkpoint_score": (metrics["macro_f1"] + field["macro_f1"]) / 2}


class StagedTrainer:
    """Runs the stages in order, skipping those a previous run finished (with --resume). With real field photos
    (`field_data`), the recipe first runs once per cross-validation fold (`cropdx_hf.training.crossval`)."""

    def __init__(self, cfg: TrainConfig, callbacks: list[TrainerCallback] | None = None):
        self.cfg = cfg
        self.callbacks = callbacks or []
        self.device = resolve_device(cfg.device)
        # one process per device under torchrun/accelerate: only the main one writes files
        self.state = PartialState(cpu=self.device == "cpu")
        set_seed(cfg.seed)
        split_csv = cfg.split_csv or str(Path(cfg.out) / "split.csv")
        with self.state.main_process_first():  # the main process writes the split and folds; the others reuse them
            self.data = load_leaf_dataset(cfg.data, cfg.classes)
            self.splits = split_dataset(self.data, split_csv)
            self.field = load_field_rows(cfg.field_data, self.data.class_names)
            self.field_rows = fold_rows(self.field, cfg.field_folds or str(Path(cfg.out) / "field_folds.csv"),
                                        cfg.folds or FOLDS) if self.field else None
        if cfg.max_train_samples:
            cap = cfg.max_train_samples
            self.splits = type(self.splits)(
                {k: v.shuffle(seed=cfg.seed).select(range(min(len(v), cap))) for k, v in self.splits.items()})
        self.split_csv = Path(split_csv)
        self._check_field_options()
        self.scenes = FieldScenes.from_folder(cfg.field_photos, self.splits["train"]) if cfg.field_photos else None
        self.model = create_backbone(cfg.backbone, len(self.data.class_names), drop_rate=cfg.drop_rate)
        self.start_state: dict[str, torch.Tensor] | None = None
        if cfg.init_from:
            self._start_from(cfg.init_from)
        self.initial_state = {k: v.clone() for k, v in self.model.state_dict().items()}
        self.held_out: int | None = None  # the fold of field photos a cross-validation run leaves out
        # training views at image_size; validation and the saved model at the evaluation size and crop, which may
        # be larger: RandomResizedCrop shows leaves smaller than a centre crop does, and evaluating a little above
        # the training size undoes that (FixRes, Touvron et al. 2019, arXiv:1906.06423)
        self.train_data_config = data_config(self.model, cfg.image_size)
        self.eval_config = data_config(self.model, cfg.eval_image_size or cfg.image_size, cfg.eval_crop_pct)
        self.teacher = self._teacher()
        self.history: dict[str, dict] = {}
        self._caches: dict[str, CachedActivations] | None = None
        # validation: the lab photos, then (with field photos) their field-proxy views; metrics split them apart
        self.validation_rows = self.splits["validation"]
        if self.scenes:
            self.validation_rows = datasets.concatenate_datasets([self.validation_rows,
                                                                  self.scenes.proxy(self.validation_rows)])
        self.compute_metrics = functools.partial(_compute_metrics, lab_rows=len(self.splits["validation"]))

    def _check_field_options(self) -> None:
        if self.field is None:
            if self.cfg.folds:
                logger.info("no --field-data: --folds has nothing to cross-validate")
            return
        if self.cfg.epochs_full > 0:
            raise ValueError("--field-data trains on the views cached for stages 1-2; set --epochs-full 0")

    @property
    def field_labels(self) -> np.ndarray:
        return np.asarray(self.field_rows["label"])

    def _start_from(self, model_dir: str) -> None:
        """Weights of an earlier model of the same backbone and classes (e.g. a release) instead of ImageNet's."""
        model, config = load_model_folder(model_dir)
        if class_ids(config) != self.data.class_names:
            raise ModelFolderError(f"{model_dir}: its classes {class_ids(config)} differ from the data's "
                                   f"{self.data.class_names}")
        try:
            self.model.load_state_dict(model.state_dict())
        except RuntimeError as exc:
            raise ModelFolderError(f"{model_dir}: not a {self.cfg.backbone} model ({exc})") from exc
        self.start_state = {k: v.clone() for k, v in self.model.state_dict().items()}

    def _teacher(self) -> Teacher | None:
        """The model distilled from, which reads the cached training views: stages 1-2 only."""
        if not self.cfg.teacher:
            return None
        if self.cfg.epochs_full > 0:
            raise ValueError("--teacher distils on the views cached for stages 1-2; set --epochs-full 0")
        return Teacher(self.cfg.teacher, self.data.class_names, self.train_data_config)

    def train_view_transform(self, config: dict):
        """Training views: field-style scenes with --field_photos, the lab augmentation otherwise."""
        if self.scenes is None:
            return train_transform(config)
        return field_train_transform(config, FieldViews(self.scenes.train_bank,
                                                        FieldStyle(lab_share=self.cfg.field_lab_share)))

    def logit_adjustment(self, labels: Sequence[int], weights: torch.Tensor | None = None) -> torch.Tensor | None:
        """tau * log(class prior of the rows a stage trains on, as drawn with `weights`); a class absent from them
        counts as one row."""
        if not self.cfg.logit_adjustment:
            return None
        weights = np.ones(len(labels)) if weights is None else weights.numpy() * len(labels) / float(weights.sum())
        counts = np.bincount(np.asarray(labels), weights, minlength=len(self.data.class_names)).clip(min=1)
        return self.cfg.logit_adjustment * torch.log(torch.as_tensor(counts / counts.sum(), dtype=torch.float32))

    def views_per_photo(self) -> np.ndarray:
        """Cached views per training photo: `train_views`, more for rare classes when `max_views` allows.

        Potato healthy has 72 training photos against a median class of ~600; extra augmented views of its
        photos cost little (few photos) and give the top more variety of the classes it sees least."""
        labels = np.asarray(self.splits["train"]["label"])
        views = self.cfg.train_views
        if not self.cfg.max_views or self.cfg.max_views <= views:
            return np.full(len(labels), views)
        sizes = np.bincount(labels)
        wanted = np.round(views * np.median(sizes[sizes > 0]) / sizes.clip(min=1))
        return wanted.clip(views, self.cfg.max_views).astype(int)[labels]

    def run(self) -> Path:
        start = time.time()
        if self.field is not None and self.cfg.folds:
            self.history["crossval"] = cross_validate(self)
        for stage in STAGES:
            self.run_stage(stage)
        if self.cfg.interpolate and self.start_state is not None:
            self.history["interpolation"] = self._interpolate()
        return self._save(time.time() - start)

    def run_stage(self, stage: str) -> None:
        """One stage of the current run (a fold's, or the final one's), unless --resume finds it finished."""
        if self.cfg.resume and self._load_finished(stage):
            return
        epochs = getattr(self.cfg, f"epochs_{stage}")
        self.history[stage] = getattr(self, f"_stage_{stage}")() if epochs > 0 else {"skipped": True}
        self._mark_finished(stage)

    def restart(self, held_out: int | None) -> None:
        """Back to the starting weights, for a run that leaves out the field photos of fold `held_out` (None: the
        final run, on all of them)."""
        self.model.load_state_dict(self.initial_state)
        self.held_out = held_out

    def score_held_out(self) -> FoldResult:
        """The held-out fold's field photos and lab validation, scored at every weight share of the mix."""
        caches = self._caches_for_top(training=False)
        held_out = np.flatnonzero(np.asarray(self.field_rows["fold"]) == self.held_out)
        field = caches["field_eval"].select(torch.as_tensor(held_out))
        lab = caches["validation"].select(torch.arange(len(caches["validation"])) < len(self.splits["validation"]))
        trained = {k: v.clone() for k, v in self.model.state_dict().items()}
        logits, lab_macro_f1 = {}, {}
        for alpha in self._mix_shares():
            self.model.load_state_dict(weights_at(self.start_state, trained, alpha) if self.start_state else trained)
            logits[alpha] = self._top_logits(field)
            lab_macro_f1[alpha] = classification_metrics(self._top_logits(lab).argmax(-1), lab.labels.numpy())[
                "macro_f1"]
        self.model.load_state_dict(trained)
        return FoldResult(held_out, logits, lab_macro_f1)

    def _mix_shares(self) -> tuple[float, ...]:
        return INTERPOLATION if self.cfg.interpolate and self.start_state is not None else (1.0,)

    def _interpolate(self) -> dict:
        """Weight-space ensembling (WiSE-FT, Wortsman et al. 2022, arXiv:2109.01903): a mix of the starting and the
        trained weights often keeps most of what each is good at (here: lab photos and field photos), since both
        lie in one basin. With real field photos the cross-validation chose the share (`crossval`). Otherwise
        kept: the mix with the best validation checkpoint score among those whose lab validation macro-F1 is not
        below the starting model's (no lab regression); alpha 1 is the trained model, 0 the start
        (docs/training.md has the measured trade-off)."""
        trained = {k: v.clone() for k, v in self.model.state_dict().items()}
        if "crossval" in self.history:
            chosen = self.history["crossval"]["alpha"]
            self.model.load_state_dict(weights_at(self.start_state, trained, chosen))
            return {"alpha": chosen, "validation": self._validate(), "chosen_by": "out-of-fold field top-1"}
        scores = {}
        for alpha in INTERPOLATION:
            self.model.load_state_dict(weights_at(self.start_state, trained, alpha))
            scores[alpha] = self._validate()
            logger.info("interpolation %.2f: %s", alpha, scores[alpha])
        floor = scores[0.0]["macro_f1"]
        chosen = max((a for a in scores if scores[a]["macro_f1"] >= floor),
                     key=lambda a: scores[a]["checkpoint_score"])
        self.model.load_state_dict(weights_at(self.start_state, trained, chosen))
        return {"alpha": chosen, "validation": scores[chosen], "candidates": {str(a): m for a, m in scores.items()}}

    def _top_logits(self, cache: CachedActivations) -> np.ndarray:
        """Logits of the current weights on cached trunk activations."""
        self.model.eval()
        top = model_parts.top(self.model, self.cfg.top_stages).to(self.device)
        with torch.no_grad():
            return torch.cat([top(chunk.to(self.device).float()).cpu()
                              for chunk in cache.activations.split(64)]).numpy()

    def _validate(self) -> dict[str, float]:
        """Validation metrics of the current weights, on the cached trunk activations when the trunk is the one
        that filled the cache."""
        cache = self._caches["validation"] if self._caches and self.cfg.epochs_full <= 0 else None
        if cache is not None:
            return self.compute_metrics((self._top_logits(cache), cache.labels.numpy()))
        self.model.eval()
        set_preprocessing(self.model, self.eval_config)
        with torch.no_grad():
            logits, labels = predict_logits(self.model, self.validation_rows, device=self.device)
        return self.compute_metrics((logits, labels))

    def _stage_dir(self, stage: str) -> Path:
        run = Path(self.cfg.out) / "checkpoints"
        return (run if self.held_out is None else run / f"fold{self.held_out}") / stage

    def _load_finished(self, stage: str) -> bool:
        done = self._stage_dir(stage) / STAGE_DONE
        if not done.is_file():
            return False
        self.model.load_state_dict(load_file(done))
        self.history[stage] = json.loads((done.parent / "stage.json").read_text())
        logger.info("resume: stage %s already finished", stage)
        return True

    def _mark_finished(self, stage: str) -> None:
        if not self.state.is_main_process:
            return
        folder = self._stage_dir(stage)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.model.state_dict().items()}, folder / STAGE_DONE)
        (folder / "stage.json").write_text(json.dumps(self.history[stage], indent=2))

    def _caches_for_top(self, training: bool = True) -> dict[str, CachedActivations]:
        """Trunk activations: one eval view of the validation photos (and of the real field photos, for scoring
        them), and, once a stage trains, augmented views of the training photos and of the real field photos.
        Scoring finished folds (--resume at another eval preprocessing) thus never fills the training views.
        Every cache seeds its own views, so the order they are filled in changes nothing."""
        if self._caches is None:
            self._caches = self._eval_caches()
        if training and "train" not in self._caches:
            self._caches.update(self._train_caches())
        return self._caches

    def _common_cache_args(self) -> dict:
        return {"device": self.device, "seed": self.cfg.seed, "num_workers": self.cfg.cache_workers,
                "batch_size": self.cfg.cache_batch_size, "teacher": self.teacher}

    def _eval_caches(self) -> dict[str, CachedActivations]:
        trunk = model_parts.trunk(self.model, self.cfg.top_stages)
        common = {**self._common_cache_args(), "teacher": None}
        caches = {"validation": cache_activations(trunk, self.validation_rows, eval_transform(self.eval_config),
                                                  desc="caching validation", **common)}
        if self.field_rows is not None:
            caches["field_eval"] = cache_activations(trunk, self.field_rows, eval_transform(self.eval_config),
                                                     desc="caching field photos", **common)
        return caches

    def _train_caches(self) -> dict[str, CachedActivations]:
        trunk = model_parts.trunk(self.model, self.cfg.top_stages)
        common = self._common_cache_args()
        caches = {"train": cache_activations(trunk, self.splits["train"], self._lab_view_transform(),
                                             views=self.views_per_photo(), desc="caching train views", **common)}
        if self.field_rows is not None:
            caches.update(self._field_caches(trunk, common))
            if "composite" in caches:  # lab rows too, drawn with the others
                caches["train"] += caches.pop("composite")
        return caches

    def _lab_view_transform(self):
        """Lab photos under the lab augmentation when real field photos teach the field (they beat field-style views
        in their place on out-of-fold field top-1 and on lab validation: docs/training.md); otherwise field-style
        views with --field-photos."""
        config = self.train_data_config
        return train_transform(config) if self.field_rows is not None else self.train_view_transform(config)

    def _field_caches(self, trunk: torch.nn.Module, common: dict) -> dict[str, CachedActivations]:
        """Views of the real field photos and (with --field-photos) field-style views of the lab photos of classes
        that have no field photos, whose only field-like examples they are."""
        taught = common if self.cfg.distill_field else {**common, "teacher": None}
        caches = {"field": cache_activations(trunk, self.field_rows, real_photo_transform(self.train_data_config),
                                             views=self.cfg.field_views, desc="caching field photo views", **taught)}
        unseen = set(range(len(self.data.class_names))) - set(self.field_labels.tolist())
        if self.scenes is not None and unseen:
            rows = self.splits["train"].filter(lambda label: label in unseen, input_columns="label")
            caches["composite"] = cache_activations(trunk, rows, self.train_view_transform(self.train_data_config),
                                                    desc="caching field-style views", **common)
        return caches

    def _training_rows(self, caches: dict[str, CachedActivations]) -> tuple[CachedActivations, torch.Tensor | None]:
        """The lab views, then the views of the field photos outside the held-out fold; and the sampling weights
        that give the field views their share of each epoch (None without field photos)."""
        if "field" not in caches:
            return caches["train"], None
        folds = torch.as_tensor(self.field_rows["fold"])
        field = caches["field"].select(folds[caches["field"].photos] != (-1 if self.held_out is None
                                                                         else self.held_out))
        weights = row_weights(len(caches["train"]), field.labels.numpy(), self.cfg.field_share,
                              self.cfg.field_balance)
        return caches["train"] + field, weights

    def _fit(self, stage: str, net: torch.nn.Module, train, labels: Sequence[int], val, epochs: float, lr: float,
             weights: torch.Tensor | None = None, optimizer=None, frozen_norm: bool = False) -> dict:
        """One Trainer run. With field photos (`weights`), epochs draw lab and field rows in the set proportion and
        run to the end: the recipe, chosen out of fold, decides the epochs, not a checkpoint score. `labels` are
        those of `train` (their class prior sets the logit adjustment)."""
        trainable = model_parts.set_trainable(self.model, net) if optimizer is None else \
            sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        args = _training_args(self.cfg, self._stage_dir(stage).parent, stage, epochs, lr, self.device,
                              best_checkpoint=weights is None)
        averaging = [WeightAverageCallback(net, self.cfg.ema_decay)] if self.cfg.ema_decay else []
        stopping = [EarlyStoppingCallback(early_stopping_patience=self.cfg.patience)] if weights is None else []
        field_rows = 0 if weights is None else len(weights) - len(self._caches_for_top()["train"])
        kind, extra = (Trainer, {}) if weights is None else \
            (MixedTrainer, {"weights": weights, "draws": epoch_draws(field_rows, self.cfg.field_share)})
        trainer = kind(
            model=model_parts.LogitsWithLoss(net, frozen_norm, self.logit_adjustment(labels, weights)), args=args,
            train_dataset=train, eval_dataset=val,
            compute_metrics=self.compute_metrics, optimizers=(optimizer, None),
            compute_loss_func=distillation_loss(self.cfg.distill_weight, self.cfg.distill_temperature,
                                                self.cfg.label_smoothing) if self.teacher is not None else None,
            callbacks=[*stopping, *averaging, *self.callbacks], **extra,
        )
        checkpoints = list(Path(args.output_dir).glob("checkpoint-*"))
        started = time.time()
        trainer.train(resume_from_checkpoint=bool(self.cfg.resume and checkpoints) or None)
        metrics = trainer.evaluate()
        return {"trainable_params": trainable, "epochs": epochs, "epochs_run": trainer.state.epoch, "lr": lr,
                "seconds": round(time.time() - started, 1),
                "validation": {k.removeprefix("eval_"): v for k, v in metrics.items()},
                "best_checkpoint": portable_path(trainer.state.best_model_checkpoint)}

    def _stage_head(self) -> dict:
        caches = self._caches_for_top()
        features = model_parts.top_features(self.model, self.cfg.top_stages).eval()
        train, weights = self._training_rows(caches)
        with torch.no_grad():
            train, val = train.mapped(features), caches["validation"].mapped(features)
        head = self.model.get_classifier()
        return self._fit("head", head, train, train.labels, val, self.cfg.epochs_head, self.cfg.lr_head, weights)

    def _stage_top(self) -> dict:
        caches = self._caches_for_top()
        train, weights = self._training_rows(caches)
        # with real field photos, BatchNorm keeps the starting model's statistics: the weight mix then blends two
        # networks that normalise alike, where statistics of mixed lab and field batches would belong to neither
        return self._fit("top", model_parts.top(self.model, self.cfg.top_stages), train, train.labels,
                         caches["validation"], self.cfg.epochs_top, self.cfg.lr_top, weights,
                         frozen_norm=self.field is not None)

    def _stage_full(self) -> dict:
        self._caches = None  # free the activation cache before full-resolution training
        train_cfg = data_config(self.model, self.cfg.full_image_size or self.train_data_config["input_size"][-1])
        train = self.splits["train"].with_transform(batch_transform(self.train_view_transform(train_cfg)))
        val = self.validation_rows.with_transform(batch_transform(eval_transform(self.eval_config)))
        self.model.requires_grad_(True)
        groups = model_parts.layerwise_param_groups(self.model, self.cfg.lr_full_low, self.cfg.lr_full_high)
        optimizer = torch.optim.AdamW(groups, weight_decay=self.cfg.weight_decay)
        before = {k: v.clone() for k, v in self.model.state_dict().items()}
        result = self._fit("full", self.model, train, self.splits["train"]["label"], val, self.cfg.epochs_full,
                           self.cfg.lr_full_high, optimizer=optimizer, frozen_norm=True)
        # best checkpoint by validation macro-F1 holds across stages too, not only within one
        previous = self.history["top"].get("validation", {}).get("checkpoint_score", -1.0)
        if result["validation"]["checkpoint_score"] < previous:
            self.model.load_state_dict(before)
            result["kept_previous_stage"] = True
        return result

    def _save(self, seconds: float) -> Path:
        out = Path(self.cfg.out)
        if not self.state.is_main_process:
            return out
        set_preprocessing(self.model, self.eval_config)
        measured = {"test": evaluate_rows(self.model, self.splits["test"], device=self.device),
                    "validation": evaluate_rows(self.model, self.splits["validation"], device=self.device)}
        if self.scenes:
            measured["field_proxy"] = {split: evaluate_rows(self.model, self.scenes.proxy(self.splits[split]),
                                                            device=self.device) for split in ("validation", "test")}
        crossval = self.history.get("crossval")
        if crossval:
            measured["field_out_of_fold"] = crossval["out_of_fold"]
        history = {k: ({x: y for x, y in v.items() if x != "logits"} if k == "crossval" else v)
                   for k, v in self.history.items()}
        metrics = {**measured, "stages": history, "train_seconds": round(seconds, 1)}
        metadata = ReleaseMetadata(backbone=self.cfg.backbone, training=TrainingRecord(self.cfg.published()),
                                   data_fingerprint=self.data.fingerprint, split_file="split.csv",
                                   split_sizes={k: len(v) for k, v in self.splits.items()}, metrics=measured)
        if self.field is not None:
            metadata.field_data = self._field_record()
        if self.scenes:
            metadata.field_training = {"style": asdict(FieldStyle(lab_share=self.cfg.field_lab_share)),
                                       "train_backgrounds": self.scenes.train_bank.fingerprint,
                                       "proxy_backgrounds": self.scenes.proxy_bank.fingerprint}
        save_model_folder(self.model.to("cpu"), out, self.data.class_names, metadata)
        if self.split_csv.resolve() != (out / "split.csv").resolve():
            shutil.copy(self.split_csv, out / "split.csv")
        if crossval:
            names = self.data.class_names
            write_out_of_fold(out / OUT_OF_FOLD, self.field_rows["file"], [names[i] for i in self.field_labels],
                              self.field_rows["fold"], crossval["logits"], names)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        return out

    def _field_record(self) -> dict:
        rows, names = self.field_rows, self.data.class_names
        return {"sources": self.cfg.field_data, "photos": len(rows), "folds": self.cfg.folds,
                "fingerprint": dataset_fingerprint(rows["sha256"], [names[i] for i in rows["label"]]),
                "out_of_fold_file": OUT_OF_FOLD if self.history.get("crossval") else None}


def train(cfg: TrainConfig) -> Path:
    return StagedTrainer(cfg).run()
