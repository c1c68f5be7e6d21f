"""A per-photo assignment (split or fold) saved as CSV beside the photos' identity, and read back by file name:
the one format of splits/plantvillage.csv and splits/plantdoc_field_folds.csv."""

from __future__ import annotations

from pathlib import Path

import datasets
import pandas as pd

from cropdx_hf.errors import DataError


def write_assignment(path: Path, rows: datasets.Dataset, class_names: list[str], group_header: str, column: str,
                     values: list) -> None:
    """One row per photo, sorted by file: file, label, its group (under `group_header`), sha256 and `column`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame({"file": rows["file"], "label": [class_names[i] for i in rows["label"]],
                          group_header: rows["leaf_group"], "sha256": rows["sha256"], column: values})
    table.sort_values("file").to_csv(path, index=False)


def read_assignment(path: Path, files: list[str], column: str, missing_message: str) -> list:
    """`column` for each of `files`; a file the CSV does not list is an error (`missing_message`, formatted with
    `count` and `example`)."""
    table = pd.read_csv(path)
    by_file = dict(zip(table["file"], table[column], strict=True))
    missing = [f for f in files if f not in by_file]
    if missing:
        raise DataError(f"{path}: " + missing_message.format(count=len(missing), example=missing[0]))
    return [by_file[f] for f in files]
