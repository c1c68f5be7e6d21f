import runpy
import shutil

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from cropdx_hf.data import load_leaf_dataset
from cropdx_hf.errors import ModelFolderError
from cropdx_hf.evaluation import select_split
from cropdx_hf.images import load_image
from cropdx_hf.leaf_detector import DETECTOR_FILE, LeafDetector, _features, fit_for_model
from cropdx_hf.model_config import read_config
from cropdx_hf.releases import DEFAULT_MODEL, release_names, resolve_model
from tests.conftest import LEAVES, ROOT


@pytest.fixture(scope="module")
def non_leaf_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("non_leaf")
    Image.fromarray(skdata.chelsea()).save(folder / "cat.png")
    return folder


@pytest.fixture(scope="module")
def clusters():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 10, (3, 32))
    labels = np.repeat(np.arange(3), 200)
    train = centres[labels] + rng.normal(0, 1, (600, 32))
    validation = centres[np.repeat(np.arange(3), 100)] + rng.normal(0, 1, (300, 32))
    return centres, labels, train, validation, rng


def test_the_threshold_accepts_the_chosen_share_of_validation_leaves(clusters):
    _, labels, train, validation, _ = clusters
    detector = LeafDetector.fit(train, labels, validation, components=8, quantile=0.95)
    assert detector.is_leaf(validation).mean() == pytest.approx(0.95, abs=0.01)


def test_far_away_features_are_rejected_and_near_ones_accepted(clusters):
    centres, labels, train, validation, rng = clusters
    detector = LeafDetector.fit(train, labels, validation, components=8)
    near = centres[rng.integers(0, 3, 100)] + rng.normal(0, 1, (100, 32))
    far = rng.normal(0, 10, (100, 32)) + 40  # nowhere near any class
    between = (centres[0] + centres[1]) / 2 + rng.normal(0, 1, (100, 32))  # off every class, inside the cloud
    assert detector.is_leaf(near).mean() > 0.95
    assert detector.is_leaf(far).mean() == 0.0
    assert detector.is_leaf(between).mean() == 0.0


def test_save_and_load_round_trip(clusters, tmp_path):
    _, labels, train, validation, _ = clusters
    detector = LeafDetector.fit(train, labels, validation, components=8, backbone="efficientnet_lite0")
    detector.save(tmp_path)
    loaded = LeafDetector.load(tmp_path)
    assert loaded.backbone == "efficientnet_lite0"
    assert loaded.threshold == pytest.approx(detector.threshold, rel=1e-5)
    assert np.allclose(loaded.score(validation), detector.score(validation), rtol=1e-3)
    assert (loaded.is_leaf(validation) == detector.is_leaf(validation)).mean() > 0.99
    assert LeafDetector.load(tmp_path / "elsewhere") is None


def test_fitted_on_fixture_leaves_the_gate_turns_away_a_cat(trained, non_leaf_dir, tmp_path):
    """The real gate network on the shipped fixture photos: fit, save, load and check agree on what a leaf is."""
    model_dir = shutil.copytree(trained[1], tmp_path / "model")
    report = fit_for_model(model_dir, LEAVES, non_leaf_dir=non_leaf_dir, per_class=4)
    detector = LeafDetector.load(model_dir)
    assert report["non_leaf_photos"] == 1 and report["non_leaf_rejected"] == 1.0
    assert read_config(model_dir)["cropdx"]["leaf_detector"] == report
    validation = trained[0].splits["validation"]
    leaves = [load_image(row["image"]["path"]) for row in validation]
    assert detector.check(leaves).mean() >= 0.5
    assert not detector.check([Image.open(non_leaf_dir / "cat.png")])[0]


def test_an_unreadable_detector_file_is_a_clear_model_folder_error(tmp_path):
    (tmp_path / DETECTOR_FILE).write_bytes(b"not safetensors")
    with pytest.raises(ModelFolderError, match="refit it"):
        LeafDetector.load(tmp_path)


@pytest.fixture(scope="module")
def real_non_leaf_photos(tmp_path_factory):
    collect = runpy.run_path(str(ROOT / "scripts" / "non_leaf_photos.py"))["collect"]
    return collect(tmp_path_factory.mktemp("non_leaf_photos"))


@pytest.mark.skipif(DEFAULT_MODEL not in release_names(), reason="the default release is not committed")
def test_the_default_release_rejects_real_non_leaf_photos(real_non_leaf_photos):
    """Issue target: >= 95 % of real non-leaf photos rejected (measured again here, not read from the card)."""
    detector = LeafDetector.load(resolve_model(DEFAULT_MODEL))
    rejected = ~detector.check([load_image(p) for p in real_non_leaf_photos])
    assert len(real_non_leaf_photos) >= 25 and rejected.mean() >= 0.95, \
        [p.name for p, r in zip(real_non_leaf_photos, rejected, strict=True) if not r]


@pytest.mark.skipif(DEFAULT_MODEL not in release_names(), reason="the default release is not committed")
def test_the_default_release_accepts_test_split_leaves(shared_data):
    """Issue target: <= 2 % of the leaf-grouped test split turned away as "not a leaf"."""
    model_dir = resolve_model(DEFAULT_MODEL)
    rows = select_split(load_leaf_dataset(shared_data), model_dir / "split.csv", "test")
    features, _ = _features(rows)
    assert len(rows) > 1000 and LeafDetector.load(model_dir).is_leaf(features).mean() >= 0.98
