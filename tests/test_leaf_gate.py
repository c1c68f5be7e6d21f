"""The leaf gate: the fitting rule on known features, the file and its reference, the real network end to end."""

import logging
import shutil

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from cropdx_hf.cli import main
from cropdx_hf.data.loading import load_leaf_dataset
from cropdx_hf.errors import ModelFolderError
from cropdx_hf.gate.fit import NEGATIVES_REJECTED, attach_gate, features_of, fit_gate, fit_leaf_gate, photo_rows
from cropdx_hf.gate.leaf_gate import GATE_FILE, RETIRED_FILE, LeafGate, gate_for_model, gate_reference
from cropdx_hf.inference.predictor import Predictor
from cropdx_hf.modeling.config import read_config
from cropdx_hf.modeling.metadata import ReleaseMetadata
from tests.conftest import LEAVES


@pytest.fixture(scope="module")
def features():
    """Leaves around one centre, non-leaves in groups of five (a photo and its crops) all around it."""
    rng = np.random.default_rng(0)
    leaves = rng.normal(0, 1, (400, 16)) + 4
    centres = rng.normal(0, 4, (80, 16))
    non_leaves = np.repeat(centres, 5, axis=0) + rng.normal(0, 0.5, (400, 16))
    return leaves, non_leaves, np.repeat(np.arange(80), 5)


def test_the_threshold_rejects_the_chosen_share_of_unseen_negatives(features):
    leaves, non_leaves, groups = features
    gate, report = fit_gate(leaves, non_leaves, groups)
    assert report["out_of_fold_negatives_rejected"] == pytest.approx(NEGATIVES_REJECTED, abs=0.01)
    assert gate.is_leaf(leaves).mean() > 0.95 and gate.is_leaf(non_leaves).mean() < 0.05
    assert not gate.is_leaf(np.full((1, 16), -20.0))[0]


def test_save_and_load_round_trip(features, tmp_path):
    gate, _ = fit_gate(*features)
    loaded = LeafGate.load(gate.save(tmp_path))
    assert loaded.backbone == gate.backbone and loaded.threshold == pytest.approx(gate.threshold, rel=1e-5)
    assert np.allclose(loaded.score(features[0]), gate.score(features[0]), rtol=1e-4, atol=1e-4)


def test_an_unreadable_gate_file_is_a_clear_model_folder_error(tmp_path):
    (tmp_path / GATE_FILE).write_bytes(b"not safetensors")
    with pytest.raises(ModelFolderError, match="refit it"):
        LeafGate.load(tmp_path / GATE_FILE)


def test_a_release_names_its_gate_by_path_and_hash(features, tmp_path, caplog):
    gate_dir, model_dir = tmp_path / "leaf_gate", tmp_path / "release"
    model_dir.mkdir()
    path = fit_gate(*features)[0].save(gate_dir)
    reference = gate_reference(model_dir, path)
    assert reference["file"] == "../leaf_gate/leaf_gate.safetensors"
    assert gate_for_model(model_dir, ReleaseMetadata(leaf_gate=reference)).threshold == pytest.approx(
        LeafGate.load(path).threshold)
    with pytest.raises(ModelFolderError, match="sha256 differs"):
        gate_for_model(model_dir, ReleaseMetadata(leaf_gate={**reference, "sha256": "0" * 64}))
    path.unlink()
    with pytest.raises(ModelFolderError, match="missing"):
        gate_for_model(model_dir, ReleaseMetadata(leaf_gate=reference))
    (model_dir / RETIRED_FILE).write_bytes(b"old")
    with caplog.at_level(logging.WARNING):
        assert gate_for_model(model_dir, ReleaseMetadata()) is None
    assert "retired" in caplog.text and "not be turned away" in caplog.text


@pytest.fixture(scope="module")
def fitted_gate(trained, field_photos, tmp_path_factory):
    """The real gate network and fitting code on the fixture photos, attached to a trained fixture model."""
    folder = tmp_path_factory.mktemp("gate")
    model_dir = shutil.copytree(trained[1], folder / "model")
    report = fit_leaf_gate(load_leaf_dataset(LEAVES), model_dir / "split.csv", field_photos, folder / "leaf_gate",
                           scenes_per_kind=4)
    attach_gate([model_dir], folder / "leaf_gate", report)
    return folder / "leaf_gate", model_dir


def test_fitted_on_fixtures_the_gate_keeps_leaves_and_turns_away_a_cat(fitted_gate, trained, field_photos):
    gate_dir, model_dir = fitted_gate
    report = read_config(model_dir)["cropdx"]["leaf_gate"]["report"]
    assert report["non_leaf_holdout_photos"] == 2 and report["non_leaf_holdout_rejected"] == 1.0
    assert report["field_proxy_validation_turned_away"] <= 0.5
    predictor = Predictor.from_folder(model_dir)
    assert predictor.gate is not None
    cat = Image.fromarray(skdata.chelsea())
    assert predictor.diagnose(cat).status == "not_a_leaf"
    leaves = [row["image"]["path"] for row in trained[0].splits["validation"]]
    assert predictor.gate.check([Image.open(p).convert("RGB") for p in leaves]).mean() >= 0.5


def test_gate_features_come_from_the_generic_network(field_photos):
    rows = photo_rows(sorted((field_photos / "non_leaf" / "fit").glob("*.png"))[:2])
    assert features_of(rows).shape == (2, 1280)


def test_fit_leaf_gate_refuses_an_unknown_release_before_fitting(capsys):
    assert main(["fit-leaf-gate", "--data", str(LEAVES), "--split-csv", "x.csv", "--field-photos", "nowhere",
                 "--out", "nowhere", "--attach", "no_such_release"]) == 2
    assert "no_such_release" in capsys.readouterr().err
