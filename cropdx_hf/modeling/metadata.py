"""What a release is and what was measured about it: config.json's `cropdx` section, typed.

Each field has one writer: training writes what the run was (backbone ... field_training), `cropdx calibrate` the
temperature and threshold, `cropdx fit-leaf-gate` the leaf gate, `cropdx export` the export record.
Everything else reads. Keys written by older cropdx versions (e.g. the retired `leaf_detector` report) are kept
unread under `retired`, so an old folder still loads and writes back unchanged. Torch-free.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cropdx_hf.modeling.config import CONFIG, read_config
from cropdx_hf.modeling.exports import ExportRecord

DEFAULT_THRESHOLD = 0.70  # the seed design's abstain floor; calibration may raise it, never lower it


@dataclass(frozen=True)
class LeafGateRecord:
    """The leaf gate a release names: its file (relative to the model folder), that file's sha256 (the runtime
    refuses any other file), and what fitting it measured (the card shows it)."""

    file: str
    sha256: str
    report: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "sha256": self.sha256, **({"report": self.report} if self.report else {})}


@dataclass(frozen=True)
class TrainingRecord:
    """The options a release was trained with, as `TrainConfig.published()` wrote them; typed for the ones cards
    read, the rest by name (releases trained by older cropdx versions hold other keys)."""

    options: dict[str, Any]

    @property
    def image_size(self) -> int | None:
        return self.options.get("image_size")

    @property
    def top_stages(self) -> int:
        return self.options["top_stages"]

    @property
    def train_views(self) -> int:
        return self.options["train_views"]

    @property
    def max_views(self) -> int | None:
        return self.options.get("max_views")


@dataclass
class ReleaseMetadata:
    # written by training (cropdx_hf.training.trainer)
    backbone: str | None = None
    training: TrainingRecord | None = None
    data_fingerprint: str | None = None
    split_file: str | None = None
    split_sizes: dict[str, int] | None = None
    metrics: dict[str, Any] | None = None  # test, validation and (with field photos) field_proxy
    field_data: dict[str, Any] | None = None  # real field photos: sources, count, folds, out-of-fold file
    field_training: dict[str, Any] | None = None  # field-style views: their style and background fingerprints
    # written by `cropdx calibrate` (cropdx_hf.evaluation.calibrate)
    temperature: float = 1.0
    threshold: float = DEFAULT_THRESHOLD
    threshold_reason: str | None = None
    calibration: dict[str, Any] | None = None  # per validation set: ECE, coverage and accuracy at the threshold
    # written by `cropdx fit-leaf-gate` (cropdx_hf.training.leaf_gate)
    leaf_gate: LeafGateRecord | None = None
    # written by `cropdx export` (cropdx_hf.release.export): the verified figures and what a rebuild needs
    export: ExportRecord | None = None
    retired: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ReleaseMetadata:
        values = dict(config.get("cropdx", {}))
        names = {f.name for f in dataclasses.fields(cls)} - {"retired"}
        known = {k: v for k, v in values.items() if k in names}
        if known.get("training"):
            known["training"] = TrainingRecord(known["training"])
        if known.get("leaf_gate"):
            known["leaf_gate"] = LeafGateRecord(**known["leaf_gate"])
        if known.get("export"):
            known["export"] = ExportRecord(known["export"])
        return cls(**known, retired={k: v for k, v in values.items() if k not in names})

    def to_config(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "retired"}
        values["training"] = self.training.options if self.training else None
        values["leaf_gate"] = self.leaf_gate.to_dict() if self.leaf_gate else None
        values["export"] = self.export.report if self.export else None
        return {**self.retired, **{k: v for k, v in values.items() if v is not None}}

    @classmethod
    def read(cls, model_dir: str | Path) -> ReleaseMetadata:
        return cls.from_config(read_config(model_dir))

    def write(self, model_dir: str | Path) -> None:
        """Replace the folder's `cropdx` section with this one, keeping the rest of config.json."""
        config = read_config(model_dir)
        config["cropdx"] = self.to_config()
        (Path(model_dir) / CONFIG).write_text(json.dumps(config, indent=2))

    @classmethod
    def update(cls, model_dir: str | Path, **values: Any) -> ReleaseMetadata:
        """Set some fields in the folder's metadata (the writer of those fields calls this)."""
        metadata = dataclasses.replace(cls.read(model_dir), **values)
        metadata.write(model_dir)
        return metadata
