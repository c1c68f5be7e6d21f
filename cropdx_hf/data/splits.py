"""Leaf-grouped, class-stratified train/validation/test split, saved as CSV and reused.

PlantVillage holds ~7 photos per physical leaf; a per-image split puts near-copies in train and test and
inflates scores. sklearn's StratifiedGroupKFold gives folds, not 70/15/15 ratios, so this small greedy
assignment (per class, largest groups first, each to the split furthest below its target) is our own.
"""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

import datasets

from cropdx_hf.data.assignment import read_assignment, write_assignment
from cropdx_hf.data.loading import LeafDataset

SPLITS = ("train", "validation", "test")
DEFAULT_RATIOS = (0.70, 0.15, 0.15)
SEED = 42
MISSING = ("the saved split does not cover {count} file(s) of this data (e.g. {example}); pass a new --split-csv to "
           "make a fresh split")


def assign_splits(
    labels: list[int], groups: list[str], ratios: tuple[float, ...] = DEFAULT_RATIOS, seed: int = SEED
) -> list[str]:
    """A split name per row; every group lands in exactly one split."""
    rng = random.Random(seed)
    sizes: dict[tuple[int, str], int] = defaultdict(int)
    for label, group in zip(labels, groups, strict=True):
        sizes[(label, group)] += 1
    chosen: dict[tuple[int, str], str] = {}
    for label in sorted(set(labels)):
        keys = sorted(k for k in sizes if k[0] == label)  # canonical order: row order must not matter
        rng.shuffle(keys)  # random among equal sizes, then largest first for a tight fit
        keys.sort(key=lambda k: -sizes[k])
        total = sum(sizes[k] for k in keys)
        filled = dict.fromkeys(SPLITS, 0)
        for key in keys:
            split = max(SPLITS, key=lambda s: ratios[SPLITS.index(s)] * total - filled[s])
            chosen[key] = split
            filled[split] += sizes[key]
    return [chosen[(label, group)] for label, group in zip(labels, groups, strict=True)]


def split_dataset(data: LeafDataset, split_csv: str | Path | None = None) -> datasets.DatasetDict:
    """Split by leaf group; reuse `split_csv` when it exists so every model sees the same split."""
    rows = data.rows
    path = Path(split_csv) if split_csv else None
    if path is not None and path.is_file():
        names = read_assignment(path, rows["file"], "split", MISSING)
    else:
        names = assign_splits(rows["label"], rows["leaf_group"])
        if path is not None:
            write_assignment(path, rows, data.class_names, "leaf_group", "split", names)
    rows = rows.add_column("split", names)
    return datasets.DatasetDict(
        {s: rows.filter(lambda n, s=s: n == s, input_columns="split").remove_columns("split") for s in SPLITS}
    )
