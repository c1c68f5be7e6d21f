"""Grouped, class-stratified K-fold assignment of real field photos, saved as CSV and reused.

622 field photos are too few for one fixed split: every photo is scored once, by a model trained on the other
folds (out of fold). Near-duplicates of one photo share a `group` (PlantDoc's manifest) and stay in one fold, as
PlantVillage's photos of one leaf stay in one split.
"""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from cropdx_hf.data.assignment import read_assignment, write_assignment
from cropdx_hf.data.loading import LeafDataset
from cropdx_hf.errors import DataError

FOLDS = 5
SEED = 42
MISSING = ("the saved folds do not cover {count} photo(s) of this data (e.g. {example}); pass another folds file to "
           "assign fresh folds")


def assign_folds(labels: list[int], groups: list[str], folds: int = FOLDS, seed: int = SEED) -> list[int]:
    """A fold number per row (0 to folds-1); every group lands in exactly one fold."""
    if len(set(groups)) < folds:
        raise DataError(f"{len(set(groups))} photo group(s) cannot fill {folds} folds")
    splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
    fold = np.zeros(len(labels), dtype=int)
    for k, (_, held_out) in enumerate(splitter.split(np.zeros(len(labels)), labels, groups)):
        fold[held_out] = k
    return fold.tolist()


def fold_rows(data: LeafDataset, folds_csv: str | Path | None = None, folds: int = FOLDS) -> datasets.Dataset:
    """`data.rows` with a `fold` column; reuse `folds_csv` when it exists, so every release is scored on the same
    folds, and write it otherwise."""
    path = Path(folds_csv) if folds_csv else None
    if path is not None and path.is_file():
        assigned = [int(fold) for fold in read_assignment(path, data.rows["file"], "fold", MISSING)]
        if sorted(set(assigned)) != list(range(folds)):
            raise DataError(f"{path}: holds folds {sorted(set(assigned))}, not the {folds} asked for; pass another "
                            "folds file to assign fresh folds")
    else:
        assigned = assign_folds(data.rows["label"], data.rows["leaf_group"], folds)
        if path is not None:
            write_assignment(path, data.rows, data.class_names, "group", "fold", assigned)
    return data.rows.add_column("fold", assigned)
