from collections import Counter, defaultdict

import pandas as pd
import pytest

from cropdx_hf.data.splits import DEFAULT_RATIOS, SPLITS, assign_splits, split_dataset
from cropdx_hf.errors import DataError
from tests.conftest import ROOT


def _check(labels, groups, names, tolerance):
    by_group = defaultdict(set)
    for group, name in zip(groups, names, strict=True):
        by_group[group].add(name)
    assert all(len(s) == 1 for s in by_group.values()), "a leaf group straddles splits"
    for label in set(labels):
        counts = Counter(n for lab, n in zip(labels, names, strict=True) if lab == label)
        total = sum(counts.values())
        for split, ratio in zip(SPLITS, DEFAULT_RATIOS, strict=True):
            assert abs(counts[split] / total - ratio) <= tolerance(label), (label, split, counts)


def test_plantvillage_split_is_grouped_and_stratified(shared_data):
    manifest = pd.read_csv(shared_data / "manifest.csv")
    labels, groups = manifest["class"].tolist(), manifest["leaf_group"].tolist()
    names = assign_splits(labels, groups)
    largest_group = manifest.groupby(["class", "leaf_group"]).size().groupby("class").max()
    size = manifest["class"].value_counts()
    # a class can miss its ratio by at most about one of its largest groups
    _check(labels, groups, names, lambda c: max(0.02, largest_group[c] / size[c]))
    assert names == assign_splits(labels, groups), "seed 42 must give the same split every time"
    reversed_names = assign_splits(labels[::-1], groups[::-1])[::-1]
    assert names == reversed_names, "the split must not depend on row order"


def test_committed_split_is_the_one_the_rule_gives(shared_data):
    committed = pd.read_csv(ROOT / "splits" / "plantvillage.csv")
    assert len(committed) == len(pd.read_csv(shared_data / "manifest.csv"))
    fresh = assign_splits(committed["label"].tolist(), committed["leaf_group"].tolist())
    assert fresh == committed["split"].tolist()


def test_split_is_saved_and_reused(fixture_dataset, tmp_path):
    csv = tmp_path / "split.csv"
    first = split_dataset(fixture_dataset, csv)
    saved = pd.read_csv(csv)
    assert set(saved.columns) == {"file", "label", "leaf_group", "sha256", "split"}
    assert sum(len(first[s]) for s in SPLITS) == len(fixture_dataset.rows)
    saved.loc[saved["split"] == "train", "split"] = "test"  # an edited CSV must win over a fresh split
    saved.to_csv(csv, index=False)
    again = split_dataset(fixture_dataset, csv)
    assert len(again["train"]) == 0 and len(again["test"]) == len(first["train"]) + len(first["test"])


def test_a_split_that_does_not_cover_the_data_is_refused(fixture_dataset, tmp_path):
    csv = tmp_path / "split.csv"
    split_dataset(fixture_dataset, csv)
    pd.read_csv(csv).iloc[1:].to_csv(csv, index=False)
    with pytest.raises(DataError, match="does not cover 1 file"):
        split_dataset(fixture_dataset, csv)


def test_field_folds_are_grouped_stratified_and_reused(tmp_path):
    from cropdx_hf.data.folds import assign_folds, fold_rows
    from cropdx_hf.data.loading import LeafDataset

    labels = [i % 3 for i in range(60)]
    groups = [f"g{i // 2}" for i in range(60)]  # near-duplicate pairs
    folds = assign_folds(labels, groups, folds=5)
    assert sorted(set(folds)) == [0, 1, 2, 3, 4]
    for group in set(groups):
        assert len({f for f, g in zip(folds, groups, strict=True) if g == group}) == 1, "a group straddles folds"
    for fold in range(5):
        held = Counter(lab for lab, f in zip(labels, folds, strict=True) if f == fold)
        assert set(held) == {0, 1, 2}, "every class in every fold"
    assert folds == assign_folds(labels, groups, folds=5), "seeded"
    import datasets

    rows = datasets.Dataset.from_dict({"label": labels, "leaf_group": groups, "file": [f"c/{i}.jpg" for i in range(60)],
                                       "sha256": [str(i) for i in range(60)]})
    data = LeafDataset(rows, ["a", "b", "c"])
    csv = tmp_path / "folds.csv"
    assert fold_rows(data, csv, 5)["fold"] == folds
    saved = pd.read_csv(csv)
    saved.loc[saved["file"] == "c/0.jpg", "fold"] = 4  # an edited file must win over fresh folds
    saved.to_csv(csv, index=False)
    assert fold_rows(data, csv, 5)["fold"][0] == 4
    with pytest.raises(DataError, match="not the 3 asked for"):
        fold_rows(data, csv, 3)
    pd.read_csv(csv).iloc[1:].to_csv(csv, index=False)
    with pytest.raises(DataError, match="do not cover 1 photo"):
        fold_rows(data, csv, 5)


def test_committed_field_folds_are_the_ones_the_rule_gives():
    from cropdx_hf.data.folds import assign_folds
    from cropdx_hf.data.loading import load_field_rows
    from cropdx_hf.labels import CLASS_IDS

    field = ROOT.parent / "shared" / "data" / "plantdoc_field"
    if not (field / "manifest.csv").is_file():
        pytest.skip(f"the PlantDoc field photos are not at {field}")
    rows = load_field_rows([field], list(CLASS_IDS)).rows
    committed = pd.read_csv(ROOT / "splits" / "plantdoc_field_folds.csv").set_index("file")
    assert sorted(committed.index) == sorted(rows["file"])
    assert assign_folds(rows["label"], rows["leaf_group"]) == committed.loc[rows["file"], "fold"].tolist()
