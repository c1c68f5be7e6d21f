"""The leaf gate: the fitting rule on known features, the file and its reference, the real network end to end."""

import dataclasses
import hashlib
import io
import logging
import runpy
import shutil

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from cropdx_hf.cli import main
from cropdx_hf.data.loading import load_leaf_dataset
from cropdx_hf.errors import ModelFolderError
from cropdx_hf.gate.leaf_gate import GATE_FILE, LeafGate, gate_for_model, gate_reference
from cropdx_hf.inference.predictor import Predictor
from cropdx_hf.modeling.config import read_config
from cropdx_hf.modeling.metadata import ReleaseMetadata
from cropdx_hf.release.registry import DEFAULT_RELEASE
from cropdx_hf.training.leaf_gate import NEGATIVES_REJECTED, features_of, fit_gate, fit_leaf_gates, photo_rows
from tests.conftest import LEAVES, RELEASES, ROOT

CLASSIFIER_DIMS = 6  # of the 16 synthetic features, the first 6 stand for the classifier's


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
    gate, report = fit_gate(leaves, non_leaves, groups, CLASSIFIER_DIMS)
    assert report["out_of_fold_negatives_rejected"] == pytest.approx(NEGATIVES_REJECTED, abs=0.01)
    assert is_leaf(gate, leaves).mean() > 0.95 and is_leaf(gate, non_leaves).mean() < 0.05
    assert not is_leaf(gate, np.full((1, 16), -20.0))[0]


def test_the_shortcut_decides_clear_photos_alone_and_as_the_full_score_would(features):
    leaves, non_leaves, groups = features
    gate, _ = fit_gate(leaves, non_leaves, groups, CLASSIFIER_DIMS)
    rows = np.concatenate([leaves, non_leaves, np.full((1, 16), 0.5)])
    asked: list[int] = []

    def generic_features_of(undecided: list[int]) -> np.ndarray:
        asked.extend(undecided)
        return rows[undecided, CLASSIFIER_DIMS:]

    decisions = gate.decide(rows[:, :CLASSIFIER_DIMS], generic_features_of)
    _, decided = gate.shortcut.decide(rows[:, :CLASSIFIER_DIMS])
    assert 0.5 < decided.mean() < 1 and sorted(asked) == np.flatnonzero(~decided).tolist()
    assert np.mean(decisions == is_leaf(gate, rows)) >= 0.99


def is_leaf(gate: LeafGate, rows: np.ndarray) -> np.ndarray:
    return gate.is_leaf(rows[:, :CLASSIFIER_DIMS], rows[:, CLASSIFIER_DIMS:])


def test_features_of_the_wrong_width_are_a_clear_error(features):
    gate, _ = fit_gate(*features, CLASSIFIER_DIMS)
    with pytest.raises(ModelFolderError, match="expects 6 classifier and 10 generic features"):
        gate.is_leaf(features[0][:, :5], features[0][:, 5:])


def test_save_and_load_round_trip(features, tmp_path):
    gate, _ = fit_gate(*features, CLASSIFIER_DIMS)
    loaded = LeafGate.load(gate.save(tmp_path))
    assert (loaded.backbone, loaded.image_size, loaded.classifier_dims) == (gate.backbone, gate.image_size,
                                                                            CLASSIFIER_DIMS)
    assert loaded.threshold == pytest.approx(gate.threshold, rel=1e-5)
    assert (loaded.shortcut.leaf_above, loaded.shortcut.not_leaf_below) == pytest.approx(
        (gate.shortcut.leaf_above, gate.shortcut.not_leaf_below), rel=1e-5)
    rows = features[0]
    assert np.allclose(loaded.score(rows[:, :6], rows[:, 6:]), gate.score(rows[:, :6], rows[:, 6:]), rtol=1e-4,
                       atol=1e-4)


def test_an_unreadable_gate_file_is_a_clear_model_folder_error(tmp_path):
    (tmp_path / GATE_FILE).write_bytes(b"not safetensors")
    with pytest.raises(ModelFolderError, match="refit it"):
        LeafGate.load(tmp_path / GATE_FILE)


def test_a_release_names_its_gate_by_file_and_hash(features, tmp_path, caplog):
    model_dir = tmp_path / "release"
    path = fit_gate(*features, CLASSIFIER_DIMS)[0].save(model_dir)
    reference = gate_reference(model_dir)
    assert reference.file == GATE_FILE
    assert gate_for_model(model_dir, ReleaseMetadata(leaf_gate=reference)).threshold == pytest.approx(
        LeafGate.load(path).threshold)
    with pytest.raises(ModelFolderError, match="sha256 differs"):
        gate_for_model(model_dir, ReleaseMetadata(leaf_gate=dataclasses.replace(reference, sha256="0" * 64)))
    path.unlink()
    with pytest.raises(ModelFolderError, match="missing"):
        gate_for_model(model_dir, ReleaseMetadata(leaf_gate=reference))
    with caplog.at_level(logging.WARNING):
        assert gate_for_model(model_dir, ReleaseMetadata()) is None
    assert "not be turned away" in caplog.text


@pytest.fixture(scope="module")
def fitted_gate(trained, field_photos, tmp_path_factory):
    """The real networks and fitting code on the fixture photos, for a trained fixture model."""
    model_dir = shutil.copytree(trained[1], tmp_path_factory.mktemp("gate") / "model")
    field = tmp_path_factory.mktemp("field")  # real photos of our crops: positives too, measured out of fold
    for photo in sorted(LEAVES.glob("Tomato_*/*"))[::4]:
        (field / photo.parent.name).mkdir(exist_ok=True)
        shutil.copy(photo, field / photo.parent.name / photo.name)
    reports = fit_leaf_gates(load_leaf_dataset(LEAVES), model_dir / "split.csv", field_photos, [model_dir],
                             scenes_per_kind=4, field_data=load_leaf_dataset(field))
    return model_dir, reports["model"]


@pytest.mark.slow
def test_fitted_on_fixtures_the_gate_keeps_leaves_and_turns_away_a_cat(fitted_gate, trained, field_photos):
    model_dir, fitted = fitted_gate
    report = read_config(model_dir)["cropdx"]["leaf_gate"]["report"]
    assert report["threshold"] == fitted["threshold"] and (model_dir / GATE_FILE).is_file()
    assert report["non_leaf_holdout_photos"] == 2 and report["non_leaf_holdout_rejected"] >= 0.5
    assert report["field_proxy_validation_turned_away"] <= 0.5
    assert report["real_field_photos"] == len(sorted(LEAVES.glob("Tomato_*/*"))[::4])
    assert 0.0 <= report["real_field_out_of_fold_turned_away"] <= 0.5
    predictor = Predictor.from_folder(model_dir)
    assert predictor.gate is not None
    cat = Image.fromarray(skdata.chelsea())
    assert predictor.diagnose(cat).status == "not_a_leaf"
    leaves = [Image.open(row["image"]["path"]).convert("RGB") for row in trained[0].splits["validation"]]
    assert np.mean(predictor.is_leaf(leaves, predictor.forward(leaves)[1])) >= 0.5
    assert predictor.gate.classifier_dims == 1280  # the fixture model is a MobileNetV2


def test_gate_features_come_from_the_generic_network(field_photos):
    rows = photo_rows(sorted((field_photos / "non_leaf" / "fit").glob("*.png"))[:2])
    assert features_of(rows).shape == (2, 1280)


def test_fit_leaf_gate_refuses_an_unknown_release_before_fitting(capsys):
    assert main(["fit-leaf-gate", "--data", str(LEAVES), "--split-csv", "x.csv", "--field-photos", "nowhere",
                 "--models", "no_such_release"]) == 2
    assert "no_such_release" in capsys.readouterr().err


def test_the_exported_gate_network_gives_the_pytorch_features(tmp_path):
    from cropdx_hf.gate.network import generic_features
    from cropdx_hf.inference.onnx_predictor import GATE_ONNX, GATE_ONNX_INT8, OnnxGateNetwork
    from cropdx_hf.release.gate_export import export_gate_network, is_current, withdraw_int8

    photos = sorted(str(p) for p in LEAVES.glob("*/*"))[::9]
    report = export_gate_network(tmp_path, photos, calibration_images=photos)
    assert report["max_abs_feature_diff"] < 1e-3 and is_current(tmp_path) and not is_current(tmp_path, image_size=224)
    images = [Image.open(p).convert("RGB") for p in photos]
    expected = generic_features(images).numpy()
    int8 = OnnxGateNetwork(tmp_path)
    assert int8.file_name == GATE_ONNX_INT8 and report["int8"]["served"]
    cosine = (int8.features(images) * expected).sum(1) / np.linalg.norm(int8.features(images), axis=1) / \
        np.linalg.norm(expected, axis=1)
    assert cosine.min() > 0.95
    withdraw_int8(tmp_path, "test")
    fp32 = OnnxGateNetwork(tmp_path)
    assert fp32.file_name == GATE_ONNX and not (tmp_path / GATE_ONNX_INT8).exists()
    assert np.allclose(fp32.features(images), expected, atol=1e-3)


@pytest.mark.slow
@pytest.mark.skipif(DEFAULT_RELEASE not in RELEASES.names(), reason="the default release is not committed")
def test_the_released_gate_rejects_non_leaf_photos_it_never_saw(tmp_path):
    """Issue target: >= 97 % of non-leaf photos rejected; these are the held-out ones that install offline."""
    collect = runpy.run_path(str(ROOT / "scripts" / "field_photos.py"))["collect"]
    holdout = sorted((collect(tmp_path, debian=False).out / "non_leaf" / "holdout").glob("*"))
    predictor = Predictor.from_folder(RELEASES.path(DEFAULT_RELEASE))
    photos = [Image.open(p).convert("RGB") for p in holdout]
    rejected = ~np.array(predictor.is_leaf(photos, predictor.forward(photos)[1]))
    assert len(holdout) >= 10 and rejected.mean() >= 0.9, [p.name for p, r in zip(holdout, rejected, strict=True)
                                                           if not r]


@pytest.mark.slow
@pytest.mark.skipif(DEFAULT_RELEASE not in RELEASES.names(), reason="the default release is not committed")
def test_the_released_gate_accepts_the_test_split_leaves(shared_data, default_exports):
    """Issue target: <= 2 % of the leaf-grouped test photos turned away, through the exported classifier and gate
    network (batched ONNX: the same decisions as the PyTorch gate). Every third photo, 606 of 1,818, keeps the
    suite within its time; bench_field.py measures them all."""
    from cropdx_hf.data.loading import load_leaf_dataset
    from cropdx_hf.evaluation.predictions import select_split
    from cropdx_hf.inference.onnx_predictor import OnnxPredictor

    rows = select_split(load_leaf_dataset(shared_data), RELEASES.path(DEFAULT_RELEASE) / "split.csv", "test")
    predictor = OnnxPredictor.for_release(RELEASES.path(DEFAULT_RELEASE), default_exports / DEFAULT_RELEASE)
    paths = [image["path"] for image in rows["image"]][::3]
    statuses = [d.status for i in range(0, len(paths), 64) for d in predictor.diagnose_many(paths[i:i + 64])]
    assert len(paths) > 600 and np.mean([s != "not_a_leaf" for s in statuses]) >= 0.98


def test_real_photos_are_seen_whole_and_in_crops_held_out_together(tmp_path):
    """Real leaf photos (and non-leaf ones) enter the gate as the photo and its crops, one group per photo, each
    snapped with the views' camera as a JPEG."""
    from cropdx_hf.training.leaf_gate import real_photo_views

    paths = []
    for name in ("grass", "coffee"):
        paths.append(tmp_path / f"{name}.png")
        Image.fromarray(getattr(skdata, name)()).convert("RGB").save(paths[-1])
    views, groups = real_photo_views(paths, 3, np.random.default_rng(0), first_group=10)
    assert groups == [10] * 4 + [11] * 4
    assert all(Image.open(io.BytesIO(view)).format == "JPEG" for view in views)
    assert len({hashlib.sha256(view).hexdigest() for view in views}) == 8


def test_the_wallpaper_inside_an_edje_file_is_its_largest_jpeg(tmp_path):
    """Enlightenment's wallpapers come as Edje (Eet) files; the photo is the largest JPEG stream inside."""
    edje_photo = runpy.run_path(str(ROOT / "scripts" / "field_photos.py"))["edje_photo"]

    def jpeg(size: tuple[int, int]) -> bytes:
        buffer = io.BytesIO()
        Image.new("RGB", size, (40, 120, 30)).save(buffer, "JPEG")
        return buffer.getvalue()

    path = tmp_path / "wallpaper.edj"
    path.write_bytes(b"\x1e\xe7\x0fB" + jpeg((32, 18)) + b"\x00\xff\xd8\xff junk" + jpeg((640, 360)) + b"\x00" * 9)
    assert edje_photo(path).size == (640, 360)
    (tmp_path / "empty.edj").write_bytes(b"\x1e\xe7\x0fB no image")
    with pytest.raises(ValueError, match="no JPEG image"):
        edje_photo(tmp_path / "empty.edj")
