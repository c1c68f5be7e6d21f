import shutil

import pandas as pd
import pytest

from cropdx_hf.data.loading import dataset_fingerprint, derive_leaf_group, load_leaf_dataset
from cropdx_hf.errors import DataError


def test_fixture_folder_loads_through_datasets(fixture_dataset):
    assert len(fixture_dataset.class_names) == 15
    assert len(fixture_dataset.rows) == 45
    assert fixture_dataset.corrupt_files == []
    row = fixture_dataset.rows[0]
    assert set(row) == {"image", "label", "file", "sha256", "leaf_group"}
    assert row["leaf_group"].startswith(fixture_dataset.class_names[row["label"]] + "|")


def test_corrupt_files_are_counted_and_skipped(tmp_path, leaves_dir):
    data = tmp_path / "data"
    shutil.copytree(leaves_dir, data)
    (data / "Tomato_healthy" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (data / "Tomato_healthy" / "empty.JPG").write_bytes(b"")
    loaded = load_leaf_dataset(data)
    assert sorted(loaded.corrupt_files) == ["Tomato_healthy/broken.jpg", "Tomato_healthy/empty.JPG"]
    assert len(loaded.rows) == 45


def test_foreign_class_names_map_and_unknown_ones_are_skipped(tmp_path, leaves_dir):
    data = tmp_path / "plantdoc"
    shutil.copytree(leaves_dir / "Tomato_Early_blight", data / "Tomato Early blight leaf")
    shutil.copytree(leaves_dir / "Tomato_healthy", data / "Tomato leaf")
    shutil.copytree(leaves_dir / "Tomato_healthy", data / "Apple Scab Leaf")
    loaded = load_leaf_dataset(data)
    assert loaded.class_names == ["Tomato_Early_blight", "Tomato_healthy"]
    assert loaded.skipped_classes == ["Apple Scab Leaf"]


def test_class_subset(leaves_dir):
    loaded = load_leaf_dataset(leaves_dir, "potato")
    assert loaded.class_names == ["Potato___Early_blight", "Potato___Late_blight", "Potato___healthy"]
    assert len(loaded.rows) == 9


def test_missing_or_unusable_sources_give_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="not a folder"):
        load_leaf_dataset(tmp_path / "does-not-exist")
    (tmp_path / "Apple Scab Leaf").mkdir()
    (tmp_path / "Apple Scab Leaf" / "a.txt").write_text("x")
    with pytest.raises(DataError, match=str(tmp_path)):
        load_leaf_dataset(tmp_path)


def test_fingerprint_depends_on_content_and_labels_not_order():
    a = dataset_fingerprint(["h1", "h2"], ["x", "y"])
    assert a == dataset_fingerprint(["h2", "h1"], ["y", "x"])
    assert a != dataset_fingerprint(["h1", "h2"], ["y", "x"])
    assert len(a) == 64


def test_fingerprint_is_stable_across_loads(fixture_dataset, leaves_dir):
    assert load_leaf_dataset(leaves_dir).fingerprint == fixture_dataset.fingerprint


def test_derived_leaf_groups_reproduce_the_manifest(shared_data):
    manifest = pd.read_csv(shared_data / "manifest.csv")
    derived = [derive_leaf_group(c, f) for c, f in zip(manifest["class"], manifest["filename"], strict=True)]
    assert derived == manifest["leaf_group"].tolist()
