"""The training recipe's options: one dataclass, read by `cropdx train` through HfArgumentParser.

Kept apart from train.py so the command line can build its parser without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TrainConfig:
    data: str = field(metadata={"help": "image folder (class per sub-folder) or Hub dataset id"})
    out: str = field(metadata={"help": "model folder to write"})
    backbone: str = field(default="efficientnet_lite0", metadata={"help": "a name from the backbone registry"})
    classes: str = field(default="all", metadata={"help": "'all', a crop, or comma-separated class names"})
    split_csv: str | None = field(default=None, metadata={"help": "split to reuse or create (default OUT/split.csv)"})
    image_size: int | None = field(default=None, metadata={"help": "resolution (default: the backbone's)"})
    full_image_size: int | None = field(default=None, metadata={"help": "stage-3 training resolution"})
    eval_image_size: int | None = field(default=None, metadata={
        "help": "resolution the model is validated, saved and served at (default: the training one)"})
    eval_crop_pct: float | None = field(default=None, metadata={
        "help": "centre crop at evaluation (default: the backbone's, 0.875 for lite0); 1.0 keeps the whole photo"})
    top_stages: int = field(default=2, metadata={"help": "block stages trained in stage 2"})
    train_views: int = field(default=2, metadata={"help": "augmented views cached per training photo"})
    max_views: int | None = field(default=None, metadata={
        "help": "rare classes get more cached views: train_views x (median class size / class size), at most this "
                "many (default: train_views for every photo)"})
    epochs_head: float = 10
    epochs_top: float = 6
    epochs_full: float = 1
    lr_head: float = 1e-3
    lr_top: float = 1e-4
    lr_full_low: float = 1e-5
    lr_full_high: float = 5e-5
    batch_size: int = 32
    cache_batch_size: int = field(default=8, metadata={"help": "small batches: big ones spend more time in page "
                                                                 "faults than in convolutions on CPU"})
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    label_smoothing: float = 0.1
    logit_adjustment: float = field(default=0.0, metadata={
        "help": "tau of the logit-adjusted loss: rare classes (Potato healthy: 72 training photos, YellowLeaf curl: "
                "1,308) get a larger margin; 0 (the default) is plain cross-entropy; the lite0 release uses 0.5"})
    ema_decay: float = field(default=0.0, metadata={
        "help": "evaluate and keep an exponential moving average of the weights with this decay (0: off)"})
    max_grad_norm: float = 1.0
    drop_rate: float = 0.2
    patience: int = 5
    seed: int = 42
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda"})
    report_to: str = field(default="tensorboard", metadata={"help": "tensorboard, mlflow, both (comma) or none"})
    resume: bool = field(default=False, metadata={"help": "continue from OUT/checkpoints"})
    num_workers: int = field(default=0, metadata={"help": "DataLoader workers of the Trainer's stages"})
    cache_workers: int = field(default=1, metadata={
        "help": "DataLoader workers decoding and augmenting photos while the trunk fills the cache "
                "(scripts/bench_layout.py compares 0 and 1)"})
    max_train_samples: int | None = field(default=None, metadata={"help": "cap per split, for smoke runs"})
    field_photos: str | None = field(default=None, metadata={
        "help": "folder made by scripts/field_photos.py: train on field-style views (leaves cut out and placed in "
                "scenes) and validate on the field proxy as well as on lab photos"})
    field_lab_share: float = field(default=0.2, metadata={
        "help": "with --field_photos: share of training views that keep the lab background"})
    extra_data: list[str] = field(default_factory=list, metadata={
        "help": "labelled image folders (class per sub-folder, any known class naming, e.g. PlantDoc's train/) "
                "added to the training split as they are: real field photos need no compositing"})
    init_from: str | None = field(default=None, metadata={
        "help": "model folder to start from instead of ImageNet weights (same backbone and classes), e.g. a release"})
    interpolate: bool = field(default=False, metadata={
        "help": "with --init_from: after training, mix the trained and the starting weights (WiSE-FT) in the "
                "proportion with the best validation checkpoint score"})
