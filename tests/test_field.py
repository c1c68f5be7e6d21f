"""Field-style views: leaf masks, scenes, composites and the seeded field-proxy set."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from cropdx_hf.errors import DataError
from cropdx_hf.field.backgrounds import BackgroundBank
from cropdx_hf.field.composite import CANVAS, FieldStyle, FieldViews, compose, field_view
from cropdx_hf.field.masks import cut_out_leaf, leaf_mask
from cropdx_hf.field.proxy import PROXY_POOL, TRAIN_POOL, FieldScenes, background_bank
from cropdx_hf.field.textures import TEXTURES
from cropdx_hf.photos import load_image
from tests.conftest import LEAVES


@pytest.fixture(scope="module")
def photos():
    return [load_image(p) for p in sorted(LEAVES.glob("*/*"))[::3]]


@pytest.fixture(scope="module")
def bank(field_photos, fixture_dataset):
    return background_bank(field_photos, TRAIN_POOL, fixture_dataset.rows)


def test_masks_cover_the_leaf_and_not_the_paper(photos):
    masks = [leaf_mask(photo) for photo in photos]
    assert all(m is not None for m in masks)
    areas = np.array([m.mean() for m in masks])
    assert 0.2 < np.median(areas) < 0.7  # PlantVillage leaves fill about half the photo
    corners = np.array([m[[0, 0, -1, -1], [0, -1, 0, -1]].mean() for m in masks])
    assert corners.mean() < 0.2  # the paper at the corners stays out


def test_a_photo_without_a_leaf_gets_no_mask():
    assert leaf_mask(Image.new("RGB", (256, 256), (128, 128, 130))) is None
    noise = np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)
    assert leaf_mask(Image.fromarray(noise)) is None


def test_a_cutout_is_transparent_outside_the_leaf(photos):
    cutout = cut_out_leaf(photos[0])
    alpha = np.asarray(cutout.image.getchannel("A"))
    assert cutout.image.mode == "RGBA" and alpha.max() == 255 and alpha.min() == 0
    assert 0.05 < cutout.area < 0.92


@pytest.mark.parametrize("kind", sorted(TEXTURES))
def test_every_texture_is_a_function_of_its_generator(kind):
    first = TEXTURES[kind](np.random.default_rng(3), (96, 64))
    again = TEXTURES[kind](np.random.default_rng(3), (96, 64))
    other = TEXTURES[kind](np.random.default_rng(4), (96, 64))
    assert first.size == (96, 64) and first.mode == "RGB"
    assert np.array_equal(np.asarray(first), np.asarray(again))
    assert not np.array_equal(np.asarray(first), np.asarray(other))


def test_a_missing_background_folder_is_an_error_not_a_silent_switch(tmp_path):
    with pytest.raises(DataError, match="no background photos"):
        BackgroundBank.from_folder(tmp_path / "nowhere")


def test_the_two_pools_are_different_photos(field_photos, fixture_dataset):
    train = background_bank(field_photos, TRAIN_POOL, fixture_dataset.rows)
    proxy = background_bank(field_photos, PROXY_POOL, fixture_dataset.rows)
    assert train.fingerprint != proxy.fingerprint and len(train.photos) == len(proxy.photos) == 2


def test_a_field_view_moves_the_leaf_into_a_scene(photos, bank):
    rng = np.random.default_rng(0)
    views = [compose(photo, bank, rng, FieldStyle(lab_share=0.0)) for photo in photos[:8]]
    assert all(min(v.size) == CANVAS for v in views)
    for photo, view in zip(photos, views, strict=False):
        assert not np.array_equal(np.asarray(photo.resize(view.size)), np.asarray(view))
    kept = compose(photos[0], bank, rng, FieldStyle(lab_share=1.0))
    assert sorted(kept.size) == sorted(photos[0].size)  # a lab view keeps the whole photo (turned or flipped)


def test_seeded_views_are_the_same_everywhere(photos, bank):
    assert field_view(photos[0], bank, 7) == field_view(photos[0], bank, 7)
    assert field_view(photos[0], bank, 7) != field_view(photos[0], bank, 8)
    view = Image.open(io.BytesIO(field_view(photos[0], bank, 7)))
    assert view.format == "JPEG"


def test_training_views_differ_per_call_and_repeat_per_seed(photos, bank):
    torch.manual_seed(1)
    views = FieldViews(bank)
    first, second = np.asarray(views(photos[0])), np.asarray(views(photos[0]))
    assert first.shape != second.shape or not np.array_equal(first, second)
    torch.manual_seed(1)
    assert np.array_equal(np.asarray(FieldViews(bank)(photos[0])), first)


def test_the_field_proxy_is_seeded_by_photo_and_keeps_labels(field_photos, fixture_dataset):
    scenes = FieldScenes.from_folder(field_photos, fixture_dataset.rows)
    rows = fixture_dataset.rows.select(range(6))
    proxy, again = scenes.proxy(rows), scenes.proxy(rows.shuffle(seed=1))
    assert proxy["label"] == rows["label"]
    by_hash = {sha: image["bytes"] for sha, image in zip(again["sha256"], again["image"], strict=True)}
    assert all(by_hash[sha] == image["bytes"] for sha, image in zip(proxy["sha256"], proxy["image"], strict=True))
    assert len({image["bytes"] for image in proxy["image"]}) == 6
