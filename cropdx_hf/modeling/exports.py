"""What `cropdx export` recorded beside its ONNX files, read in one place: which file is served, made from which
weights. Torch-free: the ONNX predictor reads it at start-up."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cropdx_hf.errors import ModelFolderError

EXPORT_REPORT = "export_metrics.json"  # the classifier's export: what was measured, which file qualified
GATE_EXPORT_REPORT = "gate_network.json"  # the leaf gate's generic network: what it is, its preprocessing, parity


@dataclass(frozen=True)
class ExportRecord:
    """One export report as written (`report`), with the answers its readers need."""

    report: dict[str, Any]

    @classmethod
    def read(cls, folder: str | Path, name: str = EXPORT_REPORT) -> ExportRecord:
        path = Path(folder) / name
        if not path.is_file():
            raise ModelFolderError(f"{folder}: no {name}; run `cropdx export` for it")
        return cls(json.loads(path.read_text()))

    def write(self, folder: str | Path, name: str = EXPORT_REPORT) -> None:
        (Path(folder) / name).write_text(json.dumps(self.report, indent=2))

    @property
    def int8(self) -> dict[str, Any]:
        return self.report.get("int8", {})

    @property
    def serves_int8(self) -> bool:
        """Whether the verification qualified the INT8 file: `served` once a rebuild or a gate check decided,
        `recommended` as the release-time export judged it."""
        return bool(self.int8.get("served", self.int8.get("recommended", False)))

    @property
    def weights_sha256(self) -> str | None:
        return self.report.get("weights_sha256")
