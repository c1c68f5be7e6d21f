import numpy as np
import pytest

from cropdx_hf.leaf_detector import LeafDetector


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
    detector = LeafDetector.fit(train, labels, validation, bounds=[0, 32], components=(8,), quantile=0.95)
    assert detector.is_leaf(validation).mean() == pytest.approx(0.95, abs=0.01)


def test_far_away_features_are_rejected_and_near_ones_accepted(clusters):
    centres, labels, train, validation, rng = clusters
    detector = LeafDetector.fit(train, labels, validation, bounds=[0, 16, 32], components=(8, 8))
    near = centres[rng.integers(0, 3, 100)] + rng.normal(0, 1, (100, 32))
    far = rng.normal(0, 10, (100, 32)) + 40  # nowhere near any class
    half_far = near.copy()
    half_far[:, 16:] += 40  # leaf-like at the first level only: the second level must reject it
    assert detector.is_leaf(near).mean() > 0.95
    assert detector.is_leaf(far).mean() == 0.0
    assert detector.is_leaf(half_far).mean() == 0.0


def test_save_and_load_round_trip(clusters, tmp_path):
    _, labels, train, validation, _ = clusters
    detector = LeafDetector.fit(train, labels, validation, bounds=[0, 16, 32], components=(8, 8))
    detector.save(tmp_path)
    loaded = LeafDetector.load(tmp_path)
    for a, b in zip(loaded.levels, detector.levels, strict=True):
        assert (a.start, a.stop) == (b.start, b.stop) and a.threshold == pytest.approx(b.threshold, rel=1e-5)
        assert np.allclose(a.score(validation), b.score(validation), rtol=1e-3)
    assert (loaded.is_leaf(validation) == detector.is_leaf(validation)).mean() > 0.99
    assert LeafDetector.load(tmp_path / "elsewhere") is None
