"""Release plumbing that needs no training: the models folder, hashes and served files, timing, the hub's
self-contained upload, the comparison table."""

import json
import shutil

import numpy as np
import pytest

from cropdx_hf.errors import ModelFolderError, UnknownModelError
from cropdx_hf.gate.leaf_gate import GATE_FILE, LeafGate, Shortcut, gate_reference
from cropdx_hf.inference.onnx_predictor import served_file
from cropdx_hf.labels import CLASS_IDS
from cropdx_hf.modeling.backbones import create_backbone
from cropdx_hf.modeling.config import ONNX_FP32, ONNX_INT8
from cropdx_hf.modeling.exports import EXPORT_REPORT
from cropdx_hf.modeling.folder import save_model_folder
from cropdx_hf.modeling.metadata import ReleaseMetadata, TrainingRecord
from cropdx_hf.release.cards import _stage_lines, build_card
from cropdx_hf.release.compare import write_comparison
from cropdx_hf.release.export import file_sha256, photo_set_digest
from cropdx_hf.release.hub import _files
from cropdx_hf.release.registry import EVAL_DIR, FIELD_DIR, FIELD_PROXY_DIR, Releases, resolve_model
from cropdx_hf.release.timing import latency_summary, timed


def write_evaluation(model_dir, lab: dict, field_proxy: dict | None = None, field: dict | None = None) -> None:
    """What `cropdx evaluate` leaves in a model folder: its lab test metrics and, when measured, the field proxy's
    and the real field photos' (out of fold)."""
    (model_dir / EVAL_DIR).mkdir(parents=True, exist_ok=True)
    (model_dir / EVAL_DIR / "metrics.json").write_text(json.dumps(lab))
    for subset, metrics in ((FIELD_PROXY_DIR, field_proxy), (FIELD_DIR, field)):
        if metrics:
            (model_dir / EVAL_DIR / subset).mkdir(parents=True, exist_ok=True)
            (model_dir / EVAL_DIR / subset / "metrics.json").write_text(json.dumps(metrics))


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    """Two releases of different sizes, the small one with its leaf gate, as a models folder holds them."""
    root = tmp_path_factory.mktemp("models")
    for name, backbone, f1 in (("small", "mobilenetv2_100", 0.970), ("large", "efficientnet_lite2", 0.975)):
        folder = save_model_folder(create_backbone(backbone, num_classes=len(CLASS_IDS)), root / name,
                                   list(CLASS_IDS), ReleaseMetadata(backbone=backbone))
        measured = {"accuracy": 0.8} if name == "large" else None
        write_evaluation(folder, {"macro_f1": f1, "accuracy": f1}, measured,
                         {"accuracy": 0.6, "top3_accuracy": 0.85} if measured else None)
        # training's own record of the same figures, which may be older: the evaluation is the one that counts
        (folder / "metrics.json").write_text(json.dumps({"test": {"macro_f1": 0.5}}))
    rng = np.random.default_rng(0)
    LeafGate(rng.normal(size=8), np.ones(8), rng.normal(size=8), 0.1, -0.5, classifier_dims=4,
             shortcut=Shortcut(rng.normal(size=4), 0.0, 3.0, -3.0)).save(root / "small")
    ReleaseMetadata.update(root / "small", leaf_gate=gate_reference(root / "small"))
    return root


def test_a_models_folder_names_describes_and_recommends_its_releases(models_dir):
    releases = Releases(models_dir)
    assert releases.names() == ["large", "small"]
    assert releases.recommended() == "large"  # as good in the lab (within a point) and measured on field photos
    row = releases.describe("small")
    assert not row["recommended"] and row["params"] > 2_000_000 and row["backbone"] == "mobilenetv2_100"
    assert resolve_model("large", releases) == models_dir / "large"
    with pytest.raises(UnknownModelError, match="available: large, small"):
        releases.path("medium")
    with pytest.raises(ModelFolderError, match="need a models folder"):
        resolve_model("small")
    with pytest.raises(ModelFolderError, match="no exports folder"):
        releases.export_dir("small")


@pytest.mark.parametrize("small_f1, small_field, large_f1, large_field, expected", [
    (0.970, None, 0.975, None, "small"),  # nothing measured in the field: the smaller of the two
    (0.970, 0.6, 0.975, 0.5, "small"),  # better on real field photos
    (0.970, 0.6, 0.985, 0.5, "large"),  # better on real field photos, but 1.5 points behind in the lab
])
def test_the_recommendation_weighs_real_field_photos_among_releases_as_good_in_the_lab(
        models_dir, tmp_path, small_f1, small_field, large_f1, large_field, expected):
    shutil.copytree(models_dir, tmp_path, dirs_exist_ok=True)
    for name, f1, field in (("small", small_f1, small_field), ("large", large_f1, large_field)):
        shutil.rmtree(tmp_path / name / EVAL_DIR)
        # the proxy no longer decides: the release it favours loses when real field photos say otherwise
        write_evaluation(tmp_path / name, {"macro_f1": f1}, {"accuracy": 0.9 if name == "large" else 0.1},
                         {"accuracy": field} if field else None)
    assert Releases(tmp_path).recommended() == expected


def test_the_release_list_shows_lab_field_proxy_and_real_field_figures(models_dir, capsys):
    from cropdx_hf.cli import main

    assert Releases(models_dir).describe("large")["field_proxy_test_metrics"] == {"accuracy": 0.8}
    assert main(["--models-dir", str(models_dir), "models"]) == 0
    large, small = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("large", "small"))]
    assert "lab test acc 0.9750" in large and "field-proxy acc 0.8000" in large
    assert "real field top-1 0.6000 top-3 0.8500" in large
    assert "field-proxy acc nan" in small and "real field top-1 nan" in small  # never measured in the field


def test_a_card_lists_the_stages_in_the_order_they_ran():
    """A resumed run records the stages it read back before the folds' scores; the card still says the folds ran
    first and the weight mix came last."""
    stages = {"head": {"skipped": True}, "top": {"skipped": True},
              "crossval": {"folds": 5, "out_of_fold": {"accuracy": 0.45, "top3_accuracy": 0.76}},
              "interpolation": {"alpha": 0.5, "validation": {"macro_f1": 0.98}, "chosen_by": "out-of-fold field top-1"}}
    lines = _stage_lines(stages, TrainingRecord({"top_stages": 4, "train_views": 1}))
    assert lines[0].startswith("first, the recipe below once per fold") and lines[-1].startswith("weights mixed")
    assert [line.split(":")[0] for line in lines[1:3]] == ["head only, on cached pooled features",
                                                          "top 4 block stages + head, on cached activations of 1 "
                                                          "augmented views per photo"]


def test_a_card_needs_an_evaluated_release(models_dir, tmp_path):
    shutil.copytree(models_dir / "small", tmp_path / "small")
    shutil.rmtree(tmp_path / "small" / EVAL_DIR)
    with pytest.raises(ModelFolderError, match="no test metrics to put on a card; run `cropdx evaluate"):
        build_card(tmp_path / "small", "cropdx/small")


def test_the_environment_names_the_folders(models_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("CROPDX_MODELS", str(models_dir))
    monkeypatch.setenv("CROPDX_EXPORTS", str(tmp_path))
    releases = Releases.from_settings()
    assert releases.models_dir == models_dir and releases.export_dir("small") == tmp_path / "small"
    monkeypatch.delenv("CROPDX_MODELS")
    assert Releases.from_settings() is None
    with pytest.raises(ModelFolderError, match="no such models folder"):
        Releases.from_settings(tmp_path / "missing")


def test_int8_is_served_only_where_the_export_qualified_it(tmp_path):
    (tmp_path / ONNX_FP32).write_bytes(b"fp32")
    (tmp_path / ONNX_INT8).write_bytes(b"int8")
    for int8, served in (({"recommended": True}, ONNX_INT8), ({"recommended": False}, ONNX_FP32),
                         ({"recommended": True, "served": False}, ONNX_FP32)):
        (tmp_path / EXPORT_REPORT).write_text(json.dumps({"int8": int8}))
        assert served_file(tmp_path) == served
    (tmp_path / ONNX_INT8).unlink()
    (tmp_path / EXPORT_REPORT).write_text(json.dumps({"int8": {"recommended": True}}))
    assert served_file(tmp_path) == ONNX_FP32


def test_hashes_name_files_and_ordered_photo_sets(tmp_path):
    (tmp_path / "a").write_bytes(b"one")
    assert file_sha256(tmp_path / "a") == "7692c3ad3540bb803c020b3aee66cd8887123234ea0c6e7143c0add73ff431ed"
    assert photo_set_digest([b"one", b"two"]) != photo_set_digest([b"two", b"one"])
    assert photo_set_digest([tmp_path / "a"]) == photo_set_digest([b"one"])


def test_one_timing_loop_counts_only_the_timed_runs():
    calls = []
    times = timed(lambda: calls.append(1), runs=5, warmup=3)
    assert len(calls) == 8 and len(times) == 5 and (times >= 0).all()
    summary = latency_summary(np.array([0.010, 0.020, 0.030]), batch=4)
    assert summary == {"p50_ms": 20.0, "p95_ms": 29.0, "images_per_s": 200.0}


def test_a_pushed_release_carries_its_gate(models_dir):
    operations = {op.path_in_repo for op in _files(models_dir / "small")}
    assert {GATE_FILE, "config.json", "model.safetensors"} <= operations
    assert ReleaseMetadata.read(models_dir / "small").leaf_gate.file == GATE_FILE


def test_the_comparison_table_shows_lab_real_field_and_field_proxy(tmp_path):
    rows = [{"name": n, "stands_in_for": None, "params": p, "accuracy": 0.97, "macro_f1": 0.96,
             "field_accuracy": f and f - 0.2, "field_top3": 0.85, "field_proxy_accuracy": f, "field_proxy_top3": 0.9,
             "safetensors_mb": 9.0, "onnx_mb": None, "int8_mb": None, "p50_ms": 10.0, "p95_ms": 12.0}
            for n, p, f in (("a", 2e6, 0.8), ("b", 5e6, None))]
    out = write_comparison({"models": rows, "recommended": "a", "rule": "a rule", "reason": "a reason"}, tmp_path)
    table = (out / "compare.md").read_text()
    assert "| a | None | 2.00 M | 0.9700 | 0.9600 | 0.6000 / 0.8500 | 0.8000 / 0.9000 |" in table
    assert "| b | None | 5.00 M | 0.9700 | 0.9600 | – | – |" in table
    assert (out / "compare.png").stat().st_size > 5_000
