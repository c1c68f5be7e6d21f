"""Load a labelled image collection through `datasets`, map its classes onto ours, drop unreadable files.

Rows keep the image undecoded (`{"path", "bytes"}`) so hashing, validation and splitting never decode
twice; transforms decode lazily. Each row also carries its sha256 and leaf group for splitting.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import pandas as pd

from cropdx_hf.errors import DataError
from cropdx_hf.labels import resolve_label, select_classes
from cropdx_hf.photos import ImageError, load_image

logger = logging.getLogger(__name__)

MANIFEST = "manifest.csv"
# `<uuid>___<series> <number>[.k].JPG`; the data README defines groups from the series and the number.
_PHOTO_NAME = re.compile(r"^(?P<series>.+?)\s*(?P<num>\d+)(?:\.\d+)?(?:jpg)?\.jpe?g$", re.IGNORECASE)
PHOTO_BLOCK = 40
GROUP_COLUMNS = ("leaf_group", "group")


@dataclass
class LeafDataset:
    """Rows with columns image (undecoded), label, file, sha256, leaf_group; plus the report of the load."""

    rows: datasets.Dataset
    class_names: list[str]
    skipped_classes: list[str] = field(default_factory=list)
    corrupt_files: list[str] = field(default_factory=list)

    @property
    def fingerprint(self) -> str:
        return dataset_fingerprint(self.rows["sha256"], [self.class_names[i] for i in self.rows["label"]])


def derive_leaf_group(class_name: str, file_name: str) -> str:
    """Photos of one leaf carry consecutive numbers; 'Leaf N' names the leaf itself (data README)."""
    match = _PHOTO_NAME.match(file_name.split("___", 1)[-1])
    if not match:
        return f"{class_name}|misc|{file_name}"
    series, number = match["series"], int(match["num"])
    if "Leaf" in series:
        return f"{class_name}|{series}|leaf{number}"
    return f"{class_name}|{series}|block{number // PHOTO_BLOCK}"


def dataset_fingerprint(file_hashes: Sequence[str], labels: Sequence[str]) -> str:
    """sha256 over the sorted (file hash, label) pairs: independent of paths and order."""
    digest = hashlib.sha256()
    for file_hash, label in sorted(zip(file_hashes, labels, strict=True)):
        digest.update(f"{file_hash}\t{label}\n".encode())
    return digest.hexdigest()


def load_leaf_dataset(source: str | Path, classes: str | Sequence[str] | None = None) -> LeafDataset:
    """Load an image folder (class per sub-folder) or a Hub dataset id, keeping classes we know."""
    raw = _load_raw(source)
    wanted = select_classes(classes)
    foreign = raw.features["label"].names
    mapping = {i: resolve_label(name) for i, name in enumerate(foreign)}
    skipped = sorted(foreign[i] for i, cid in mapping.items() if cid is None or cid not in wanted)
    used = sorted({cid for cid in mapping.values() if cid in wanted}, key=wanted.index)
    if not used:
        raise DataError(f"{source}: none of its classes {foreign} maps to a cropdx class ({', '.join(wanted)})")
    if skipped:
        logger.warning("%s: skipping classes not selected or without a cropdx counterpart: %s",
                       source, ", ".join(skipped))
    index = {cid: i for i, cid in enumerate(used)}
    raw = raw.filter(lambda label: mapping[label] in index, input_columns="label")
    manifest = _read_manifest(source)
    rows = raw.map(
        lambda image, label: _describe(image, used[index[mapping[label]]], index, manifest),
        input_columns=["image", "label"], remove_columns=["label"], desc="hashing and checking images",
    )
    corrupt = [f for f, ok in zip(rows["file"], rows["readable"], strict=True) if not ok]
    if corrupt:
        logger.warning("%s: %d unreadable file(s) skipped, e.g. %s", source, len(corrupt), corrupt[0])
    rows = rows.filter(lambda ok: ok, input_columns="readable").remove_columns("readable")
    if len(rows) == 0:
        raise DataError(f"{source}: no readable images")
    return LeafDataset(rows, used, skipped, corrupt)


def load_field_rows(sources: Sequence[str | Path], class_names: Sequence[str]) -> LeafDataset | None:
    """Real photos from labelled folders (e.g. PlantDoc's field photos), labelled in `class_names` order, as one
    LeafDataset; photos of classes outside it are dropped with a warning. None without sources."""
    parts = []
    for source in sources:
        loaded = load_leaf_dataset(source)
        index = [class_names.index(c) if c in class_names else -1 for c in loaded.class_names]
        if -1 in index:
            logger.warning("%s: dropping classes the model is not trained on: %s", source,
                           ", ".join(c for c, i in zip(loaded.class_names, index, strict=True) if i < 0))
        rows = loaded.rows.cast_column("label", datasets.Value("int64"))  # its own classes, not ours
        rows = rows.map(lambda label, index=index: {"label": index[label]}, input_columns="label")
        parts.append(rows.filter(lambda label: label >= 0, input_columns="label"))
    if not parts:
        return None
    return LeafDataset(datasets.concatenate_datasets(parts), list(class_names))


def _load_raw(source: str | Path) -> datasets.Dataset:
    path = Path(source)
    try:
        if path.is_dir():
            raw = datasets.load_dataset("imagefolder", data_dir=str(path), split="train", drop_labels=False)
        elif path.exists() or str(source).startswith((".", "/")):
            raise DataError(f"{source}: not a folder of class sub-folders")
        else:
            raw = datasets.load_dataset(str(source), split="train")
    except DataError:
        raise
    except Exception as exc:  # datasets raises a different type per failure (missing, offline, empty)
        raise DataError(f"{source}: could not load the dataset ({type(exc).__name__}: {exc})") from exc
    if "image" not in raw.column_names or "label" not in raw.column_names:
        raise DataError(f"{source}: expected 'image' and 'label' columns, found {raw.column_names}")
    return raw.cast_column("image", datasets.Image(decode=False))


def _read_manifest(source: str | Path) -> dict[str, str]:
    """filename -> group from the folder's manifest, when it ships one: PlantVillage names its physical leaves
    (`leaf_group`), PlantDoc's field photos their near-duplicate sets (`group`); both keep copies on one side."""
    path = Path(source) / MANIFEST
    if not path.is_file():
        return {}
    table = pd.read_csv(path)
    column = next((c for c in GROUP_COLUMNS if c in table.columns), None)
    if column is None or "filename" not in table.columns:
        raise DataError(f"{path}: expected a 'filename' column and one of {', '.join(GROUP_COLUMNS)}")
    return dict(zip(table["filename"], table[column].astype(str), strict=True))


def _describe(image: dict, class_id: str, index: dict[str, int], manifest: dict[str, str]) -> dict:
    path = image.get("path") or ""
    data = image.get("bytes") or Path(path).read_bytes()
    name = Path(path).name
    try:
        load_image(data, name=name)
        readable = True
    except ImageError:
        readable = False
    return {
        "label": index[class_id],
        "file": f"{class_id}/{name}" if name else hashlib.sha256(data).hexdigest()[:16],
        "sha256": hashlib.sha256(data).hexdigest(),
        "leaf_group": manifest.get(name) or derive_leaf_group(class_id, name),
        "readable": readable,
    }
