"""The photo-quality check on the fixture leaves and on degraded copies of them, and how it enters a diagnosis."""

import runpy

import numpy as np
import pytest
from PIL import Image

from cropdx_hf.inference.diagnosis import decide
from cropdx_hf.inference.quality import TIPS, assess, level_at_share
from cropdx_hf.labels import CLASS_IDS
from cropdx_hf.photos import load_image
from tests.conftest import FIXTURES, LEAVES, ROOT

BENCH = runpy.run_path(str(ROOT / "scripts" / "bench_quality.py"))
DEGRADATIONS = BENCH["DEGRADATIONS"]
# a fixture leaf (Tomato_Early_blight/...7844.JPG) cut out by cropdx_hf.field.masks.cut_out_leaf and laid on paper
# white (250, 250, 248), 256 x 256, JPEG quality 92: how extension services ask farmers to photograph a leaf
LEAF_ON_WHITE = FIXTURES / "leaf_on_white.jpg"


@pytest.fixture(scope="module")
def leaves():
    return [load_image(p) for p in sorted(LEAVES.glob("*/*"))]


def test_good_photos_pass(leaves):
    assert all(assess(leaf).passed for leaf in leaves), [c for leaf in leaves for c in assess(leaf).failed]


@pytest.mark.parametrize("name", sorted(DEGRADATIONS))
def test_degraded_copies_fail_for_the_right_reason(leaves, name):
    degrade, check = DEGRADATIONS[name]
    caught = [check in {c.name for c in assess(degrade(leaf)).failed} for leaf in leaves]
    assert np.mean(caught) >= 0.95


def test_a_leaf_on_white_paper_is_not_blown_out_but_a_burnt_out_leaf_is():
    photo = load_image(LEAF_ON_WHITE)
    checks = {c.name: c for c in assess(photo).checks}
    assert all(c.passed for c in checks.values()), [c for c in checks.values() if not c.passed]
    assert checks["too_dark"].measured["mean_luma"] > 200  # the frame is mostly white: the backdrop, not the leaf
    assert checks["blown_out"].measured["subject_share"] < 0.3
    burnt = BENCH["exposure"](photo, 3)  # the leaf's own pixels pushed to white
    assert "blown_out" in {c.name for c in assess(burnt).failed}


def _strip() -> Image.Image:
    """A 4000 x 20 crop of leaf-coloured texture: nothing wrong with it but its shape."""
    rng = np.random.default_rng(0)
    return Image.fromarray((rng.normal(0, 25, (20, 4000, 3)) + (70, 130, 50)).clip(0, 255).astype(np.uint8))


def test_a_strip_is_named_as_a_strip():
    failed = {c.name: c for c in assess(_strip()).failed}
    assert set(failed) == {"strip", "too_small"}  # 20 px high, and a strip
    assert failed["strip"].measured == {"aspect_ratio": 200.0} and "narrow strip" in failed["strip"].tip


def test_a_poor_photo_is_to_be_retaken_with_its_reason_and_the_top3(leaves):
    probs = np.eye(len(CLASS_IDS))[0] * 0.98 + 0.02 / len(CLASS_IDS)
    grey = Image.fromarray(np.asarray(leaves[0].convert("L"))).convert("RGB")
    result = decide("m", CLASS_IDS, probs, 0.7, True, quality=assess(grey))
    assert result.status == "retake" and "colour" in result.message
    assert result.tips[0] == TIPS["colour"] and len(result.predictions) == 3
    body = result.to_dict()
    assert body["quality"]["passed"] is False
    assert {c["name"]: c["passed"] for c in body["quality"]["checks"]}["colour"] is False
    assert decide("m", CLASS_IDS, probs, 0.7, True, quality=assess(leaves[0])).status == "diagnosed"


def test_not_a_leaf_still_wins_and_says_what_else_is_wrong():
    result = decide("m", CLASS_IDS, np.full(len(CLASS_IDS), 1 / len(CLASS_IDS)), 0.7, False, quality=assess(_strip()))
    assert result.status == "not_a_leaf" and TIPS["strip"] in result.tips[:2]


@pytest.mark.parametrize("shape", [(224, 299), (7, 5), (1, 1), (3, 100)])
def test_the_histogram_level_is_numpys_inverted_cdf_percentile(shape):
    values = np.random.default_rng(0).integers(0, 256, shape)
    expected = np.percentile(values, 99.9, method="inverted_cdf")
    assert level_at_share(np.bincount(values.ravel(), minlength=256), 0.999) == expected


@pytest.mark.parametrize(("mode", "colour"), [("P", True), ("1", False), ("I;16", False)])
def test_photos_in_modes_reduce_refuses_are_still_assessed(leaves, mode, colour):
    photo = leaves[0].resize((900, 700)).convert(mode)  # large enough for the reduction step
    checks = {c.name: c.passed for c in assess(photo).checks}
    assert set(checks) == set(TIPS) and checks["colour"] is colour  # palettes keep colour, grey does not
