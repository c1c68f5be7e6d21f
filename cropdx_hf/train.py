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

import json
import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from accelerate import PartialState
from safetensors.torch import load_file, save_file
from transformers import EarlyStoppingCallback, Trainer, TrainerCallback, TrainingArguments, set_seed

from . import model_parts
from .backbones import create_backbone
from .data import load_leaf_dataset
from .evaluation import classification_metrics, evaluate_rows
from .feature_cache import cache_activations
from .model_folder import save_model_folder
from .splits import split_dataset
from .train_config import TrainConfig
from .transforms import batch_transform, data_config, eval_transform, set_preprocessing, train_transform
from .weight_average import WeightAverageCallback

logger = logging.getLogger(__name__)
STAGES = ("head", "top", "full")
STAGE_DONE = "stage_final.safetensors"


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda, but no CUDA device is visible")
    return device


def _training_args(cfg: TrainConfig, stage: str, epochs: float, lr: float, device: str) -> TrainingArguments:
    out = Path(cfg.out)
    return TrainingArguments(
        output_dir=str(out / "checkpoints" / stage),
        logging_dir=str(out / "runs" / stage),
        num_train_epochs=epochs,
        learning_rate=lr,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size * 2,
        lr_scheduler_type="cosine",
        warmup_ratio=cfg.warmup_ratio,
        weight_decay=cfg.weight_decay,
        label_smoothing_factor=cfg.label_smoothing,
        max_grad_norm=cfg.max_grad_norm,
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model="macro_f1",
        greater_is_better=True,
        logging_steps=20,
        seed=cfg.seed,
        use_cpu=device == "cpu",
        fp16=device == "cuda",
        dataloader_num_workers=cfg.num_workers,
        remove_unused_columns=False,
        report_to=[r for r in cfg.report_to.split(",") if r and r != "none"],
    )


def _compute_metrics(eval_pred) -> dict[str, float]:
    logits, labels = eval_pred
    return classification_metrics(np.asarray(logits).argmax(-1), np.asarray(labels))


class StagedTrainer:
    """Runs the stages in order, skipping those a previous run finished (with --resume)."""

    def __init__(self, cfg: TrainConfig, callbacks: list[TrainerCallback] | None = None):
        self.cfg = cfg
        self.callbacks = callbacks or []
        self.device = resolve_device(cfg.device)
        # one process per device under torchrun/accelerate: only the main one writes files
        self.state = PartialState(cpu=self.device == "cpu")
        set_seed(cfg.seed)
        split_csv = cfg.split_csv or str(Path(cfg.out) / "split.csv")
        with self.state.main_process_first():  # the main process writes the split; the others reuse it
            self.data = load_leaf_dataset(cfg.data, cfg.classes)
            self.splits = split_dataset(self.data, split_csv)
        if cfg.max_train_samples:
            cap = cfg.max_train_samples
            self.splits = type(self.splits)(
                {k: v.shuffle(seed=cfg.seed).select(range(min(len(v), cap))) for k, v in self.splits.items()})
        self.split_csv = Path(split_csv)
        self.model = create_backbone(cfg.backbone, len(self.data.class_names), drop_rate=cfg.drop_rate)
        # training views at image_size; validation and the saved model at the evaluation size and crop, which may
        # be larger: RandomResizedCrop shows leaves smaller than a centre crop does, and evaluating a little above
        # the training size undoes that (FixRes, Touvron et al. 2019, arXiv:1906.06423)
        self.train_config = data_config(self.model, cfg.image_size)
        self.eval_config = data_config(self.model, cfg.eval_image_size or cfg.image_size, cfg.eval_crop_pct)
        self.history: dict[str, dict] = {}
        self._caches: dict[str, object] | None = None

    def logit_adjustment(self, labels: Sequence[int]) -> torch.Tensor | None:
        """tau * log(class prior of the rows a stage trains on); a class absent from them counts as one row."""
        if not self.cfg.logit_adjustment:
            return None
        counts = np.bincount(np.asarray(labels), minlength=len(self.data.class_names)).clip(min=1)
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
        for stage in STAGES:
            if self.cfg.resume and self._load_finished(stage):
                continue
            epochs = getattr(self.cfg, f"epochs_{stage}")
            self.history[stage] = getattr(self, f"_stage_{stage}")() if epochs > 0 else {"skipped": True}
            self._mark_finished(stage)
        return self._save(time.time() - start)

    def _stage_dir(self, stage: str) -> Path:
        return Path(self.cfg.out) / "checkpoints" / stage

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

    def _caches_for_top(self):
        """Trunk activations: augmented views of the training photos, one eval view of validation photos."""
        if self._caches is None:
            trunk = model_parts.trunk(self.model, self.cfg.top_stages)
            common = {"device": self.device, "seed": self.cfg.seed, "num_workers": self.cfg.cache_workers,
                      "batch_size": self.cfg.cache_batch_size}
            self._caches = {
                "train": cache_activations(trunk, self.splits["train"], train_transform(self.train_config),
                                           views=self.views_per_photo(), desc="caching train views", **common),
                "validation": cache_activations(trunk, self.splits["validation"], eval_transform(self.eval_config),
                                                desc="caching validation", **common),
            }
        return self._caches

    def _fit(self, stage: str, net: torch.nn.Module, train, labels: Sequence[int], val, epochs: float, lr: float,
             optimizer=None, frozen_norm: bool = False) -> dict:
        """One Trainer run; `labels` are those of `train` (its class prior sets the logit adjustment)."""
        trainable = model_parts.set_trainable(self.model, net) if optimizer is None else \
            sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        args = _training_args(self.cfg, stage, epochs, lr, self.device)
        averaging = [WeightAverageCallback(net, self.cfg.ema_decay)] if self.cfg.ema_decay else []
        trainer = Trainer(
            model=model_parts.LogitsWithLoss(net, frozen_norm, self.logit_adjustment(labels)), args=args,
            train_dataset=train, eval_dataset=val,
            compute_metrics=_compute_metrics, optimizers=(optimizer, None),
            callbacks=[EarlyStoppingCallback(early_stopping_patience=self.cfg.patience), *averaging, *self.callbacks],
        )
        checkpoints = list(Path(args.output_dir).glob("checkpoint-*"))
        started = time.time()
        trainer.train(resume_from_checkpoint=bool(self.cfg.resume and checkpoints) or None)
        metrics = trainer.evaluate()
        return {"trainable_params": trainable, "epochs": epochs, "epochs_run": trainer.state.epoch, "lr": lr,
                "seconds": round(time.time() - started, 1),
                "validation": {k.removeprefix("eval_"): v for k, v in metrics.items()},
                "best_checkpoint": trainer.state.best_model_checkpoint}

    def _stage_head(self) -> dict:
        caches = self._caches_for_top()
        features = model_parts.top_features(self.model, self.cfg.top_stages).eval()
        with torch.no_grad():
            train, val = caches["train"].mapped(features), caches["validation"].mapped(features)
        head = self.model.get_classifier()
        return self._fit("head", head, train, train.labels, val, self.cfg.epochs_head, self.cfg.lr_head)

    def _stage_top(self) -> dict:
        caches = self._caches_for_top()
        return self._fit("top", model_parts.top(self.model, self.cfg.top_stages), caches["train"],
                         caches["train"].labels, caches["validation"], self.cfg.epochs_top, self.cfg.lr_top)

    def _stage_full(self) -> dict:
        self._caches = None  # free the activation cache before full-resolution training
        train_cfg = data_config(self.model, self.cfg.full_image_size or self.train_config["input_size"][-1])
        train = self.splits["train"].with_transform(batch_transform(train_transform(train_cfg)))
        val = self.splits["validation"].with_transform(batch_transform(eval_transform(self.eval_config)))
        self.model.requires_grad_(True)
        groups = model_parts.layerwise_param_groups(self.model, self.cfg.lr_full_low, self.cfg.lr_full_high)
        optimizer = torch.optim.AdamW(groups, weight_decay=self.cfg.weight_decay)
        before = {k: v.clone() for k, v in self.model.state_dict().items()}
        result = self._fit("full", self.model, train, self.splits["train"]["label"], val, self.cfg.epochs_full,
                           self.cfg.lr_full_high, optimizer, frozen_norm=True)
        # best checkpoint by validation macro-F1 holds across stages too, not only within one
        previous = self.history["top"].get("validation", {}).get("macro_f1", -1.0)
        if result["validation"]["macro_f1"] < previous:
            self.model.load_state_dict(before)
            result["kept_previous_stage"] = True
        return result

    def _save(self, seconds: float) -> Path:
        out = Path(self.cfg.out)
        if not self.state.is_main_process:
            return out
        set_preprocessing(self.model, self.eval_config)
        test = evaluate_rows(self.model, self.splits["test"], device=self.device)
        validation = evaluate_rows(self.model, self.splits["validation"], device=self.device)
        metrics = {"test": test, "validation": validation, "stages": self.history,
                   "train_seconds": round(seconds, 1)}
        metadata = {"backbone": self.cfg.backbone, "training": asdict(self.cfg),
                    "data_fingerprint": self.data.fingerprint, "split_file": "split.csv",
                    "split_sizes": {k: len(v) for k, v in self.splits.items()},
                    "metrics": {"test": test, "validation": validation}}
        save_model_folder(self.model.to("cpu"), out, self.data.class_names, metadata)
        if self.split_csv.resolve() != (out / "split.csv").resolve():
            shutil.copy(self.split_csv, out / "split.csv")
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        return out


def train(cfg: TrainConfig) -> Path:
    return StagedTrainer(cfg).run()
