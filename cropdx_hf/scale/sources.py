"""What a batch job diagnoses: the photos of a folder, a CSV of paths, or a `datasets` dataset, as rows of a path
(the photo's name in the results) and, where a dataset embeds them, the photo's bytes."""

from __future__ import annotations

from pathlib import Path
from typing import TypedDict

import pandas as pd

from cropdx_hf.errors import DataError
from cropdx_hf.photos import folder_photos, stored_photo

PATH_COLUMNS = ("path", "file", "image", "filename")  # a CSV's column of photo paths, the first one present


class PhotoSource(TypedDict):
    path: str
    image: bytes | None  # None: read from `path` by the worker


def list_photos(source: str | Path) -> list[PhotoSource]:
    """A folder of photos (recursive), a .csv of paths (relative ones are taken from the CSV's folder), or anything
    `datasets.load_dataset` reads: a parquet file or folder, or a Hub dataset id."""
    path = Path(source)
    if path.suffix.lower() == ".csv":
        return _csv_photos(path)
    photos = folder_photos(path) if path.is_dir() else []
    if photos:
        return [{"path": str(p), "image": None} for p in photos]
    return _dataset_photos(str(source))


def _csv_photos(path: Path) -> list[PhotoSource]:
    if not path.is_file():
        raise DataError(f"{path}: no such CSV of photo paths")
    table = pd.read_csv(path)
    column = next((c for c in PATH_COLUMNS if c in table.columns), None)
    if column is None:
        raise DataError(f"{path}: no column of photo paths (one of {', '.join(PATH_COLUMNS)})")
    return [{"path": str(p if Path(p).is_absolute() else path.parent / p), "image": None}
            for p in table[column].astype(str)]


def _dataset_photos(source: str) -> list[PhotoSource]:
    import datasets

    try:
        local = Path(source).exists()
        dataset = (datasets.load_dataset("parquet", data_files=_parquet_files(Path(source)), split="train") if local
                   else datasets.load_dataset(source, split="train"))
    except (FileNotFoundError, ValueError, OSError, datasets.exceptions.DatasetNotFoundError) as exc:
        raise DataError(f"{source}: not a folder of photos, a CSV of paths or a dataset ({exc})") from exc
    column = next((name for name, kind in dataset.features.items() if isinstance(kind, datasets.Image)), None)
    if column is None:
        raise DataError(f"{source}: the dataset has no image column")
    images = dataset.cast_column(column, datasets.Image(decode=False))[column]
    return [{"path": image.get("path") or f"{source}#{i}",
             "image": photo if isinstance(photo := stored_photo(image), bytes) else None}
            for i, image in enumerate(images)]


def _parquet_files(path: Path) -> list[str]:
    files = [str(path)] if path.is_file() else sorted(str(p) for p in path.rglob("*.parquet"))
    if not files:
        raise DataError(f"{path}: no photos and no parquet files in it")
    return files
