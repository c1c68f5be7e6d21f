"""Where models come from: a model folder, a release of a models folder, or a Hub repo id. Torch-free.

A models folder holds one sub-folder per release (each with its own leaf gate). Nothing here looks
for one on its own: the folder is given (`--models-dir`, or the CROPDX_MODELS variable), and so is the folder
of ONNX exports (`--exports-dir`, CROPDX_EXPORTS). The repository's scripts and Space point them at its own
models/ and exports/.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import safe_open

from cropdx_hf.errors import ModelFolderError, UnknownModelError
from cropdx_hf.modeling.config import CONFIG, WEIGHTS, read_config
from cropdx_hf.modeling.metadata import ReleaseMetadata

MODELS_ENV, EXPORTS_ENV = "CROPDX_MODELS", "CROPDX_EXPORTS"
DEFAULT_RELEASE = "efficientnet_lite0"  # what `--model` means when it is not given
EVAL_DIR = "eval"  # inside a model folder: `cropdx evaluate` output on the test split
FIELD_PROXY_DIR = "field_proxy"  # inside EVAL_DIR: the same on the test split's field proxy
FIELD_DIR = "field_out_of_fold"  # inside EVAL_DIR: real field photos, each scored by a fold model that never saw it
WITHIN_POINTS = 1.0  # test macro-F1 points from the best that still count as "as good"
RECOMMENDATION = (f"among the releases whose lab test macro-F1 is within {WITHIN_POINTS:g} point of the best, the one "
                  "with the best out-of-fold top-1 on real field photos (none measured counts as 0), then the "
                  "smallest (parameters)")
# Each release stands in for a backbone that has no offline ImageNet weights here (README, "Models").
STANDS_IN_FOR = {
    "efficientnet_lite0": "efficientnet_b0",
    "mobilenetv2_100": "mobilenetv3_small_100",
    "efficientnet_lite2": "resnet50",
}


@dataclass(frozen=True)
class Releases:
    """A models folder, and the folder its releases' ONNX exports go to (when there is one)."""

    models_dir: Path
    exports_dir: Path | None = None

    @classmethod
    def from_settings(cls, models_dir: str | Path | None = None, exports_dir: str | Path | None = None
                      ) -> Releases | None:
        """The given folders, else those of CROPDX_MODELS and CROPDX_EXPORTS; None without a models folder."""
        models = models_dir or os.environ.get(MODELS_ENV)
        exports = exports_dir or os.environ.get(EXPORTS_ENV)
        if not models:
            return None
        if not Path(models).is_dir():
            raise ModelFolderError(f"{models}: no such models folder")
        return cls(Path(models), Path(exports) if exports else None)

    def names(self) -> list[str]:
        return sorted(p.name for p in self.models_dir.iterdir() if (p / CONFIG).is_file() and (p / WEIGHTS).is_file())

    def path(self, name: str) -> Path:
        if name not in self.names():
            raise UnknownModelError(name, self.names())
        return self.models_dir / name

    def export_dir(self, name: str) -> Path:
        if self.exports_dir is None:
            raise ModelFolderError(f"no exports folder: pass --exports-dir or set {EXPORTS_ENV}")
        return self.exports_dir / name

    def recommended(self) -> str:
        """The release chosen by RECOMMENDATION, from each release's measured metrics: farmers photograph
        leaves in the field, so among releases as good in the lab real field photos decide."""
        rows = {name: self.describe(name, recommend=False) for name in self.names()}
        lab = {name: (row["test_metrics"] or {}).get("macro_f1", 0.0) for name, row in rows.items()}
        best = max(lab.values())
        return min((name for name in rows if (best - lab[name]) * 100 <= WITHIN_POINTS),
                   key=lambda name: (-(rows[name]["field_metrics"] or {}).get("accuracy", 0.0),
                                     rows[name]["params"]))

    def describe(self, name: str, recommend: bool = True) -> dict[str, Any]:
        """What `cropdx models --json` lists: the release's metrics as `cropdx evaluate` measured them (the
        figures its card shows): lab test photos, their field proxy and real field photos out of fold; None where
        it was not evaluated."""
        folder = self.path(name)
        config = read_config(folder)
        return {
            "name": name,
            "path": str(folder),
            "backbone": ReleaseMetadata.from_config(config).backbone,
            "architecture": config["architecture"],
            "stands_in_for": STANDS_IN_FOR.get(name),
            "default": name == DEFAULT_RELEASE,
            "recommended": name == self.recommended() if recommend else None,
            "params": count_parameters(folder / WEIGHTS),
            "size_mb": round((folder / WEIGHTS).stat().st_size / 1e6, 2),
            "input_size": config["pretrained_cfg"]["input_size"],
            "test_metrics": evaluation(folder),
            "field_proxy_test_metrics": evaluation(folder, FIELD_PROXY_DIR),
            "field_metrics": evaluation(folder, FIELD_DIR),
        }


def evaluation(model_dir: Path, subset: str = "") -> dict[str, Any] | None:
    """`cropdx evaluate`'s metrics.json for a model folder (lab test photos, or a subset such as the field
    proxy), or None when it was not evaluated there."""
    path = model_dir / EVAL_DIR / subset / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None


def resolve_model(name_or_dir: str | Path | None, releases: Releases | None = None) -> Path:
    """A model folder, a release of `releases`, or a Hub repo id (`org/name`, downloaded or read from the HF
    cache); None means the default release."""
    name = str(name_or_dir or DEFAULT_RELEASE)
    if Path(name).is_dir():
        return Path(name)
    if releases is not None and name in releases.names():
        return releases.path(name)
    if name.count("/") == 1 and not name.startswith((".", "/")):
        return _from_hub(name)
    where = (f"releases in {releases.models_dir}: {', '.join(releases.names()) or 'none'}" if releases else
             f"release names need a models folder: pass --models-dir or set {MODELS_ENV}")
    raise ModelFolderError(f"{name}: neither a model folder nor a release name ({where})")


def resolve_models(default: str, names: list[str], releases: Releases | None = None) -> dict[str, Path]:
    """The folders of `default` and `names` (release names, model folders or Hub ids), each known by its last path
    part (a release name, a folder's name, the NAME of ORG/NAME): what a service loads and a request names."""
    return {Path(name).name: resolve_model(name, releases) for name in dict.fromkeys([default, *names])}


def _from_hub(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        return Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "*.csv"]))
    except (RepositoryNotFoundError, LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
        raise ModelFolderError(f"{repo_id}: not a local folder or release, and the Hub has no such model "
                               f"reachable from here ({type(exc).__name__})") from exc


def count_parameters(weights: Path) -> int:
    """Learnable parameters in a safetensors file, read from its header (BatchNorm buffers excluded)."""
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    with safe_open(weights, "np") as f:  # header only; "np" keeps torch out of the ONNX path
        shapes = [f.get_slice(k).get_shape() for k in f.keys() if not k.endswith(buffers)]
    return int(sum(math.prod(shape) for shape in shapes))
