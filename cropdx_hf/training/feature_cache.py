"""Run the frozen trunk once per image (and augmented view) and keep its activations in memory.

On a 2-core CPU the trunk is most of the cost of every step; with its output cached, stages 1-2 train
the top of the network many times faster than a plain fine-tune, with augmentation kept by caching
several augmented views of each training photo.
"""

from __future__ import annotations

from collections.abc import Sequence

import datasets
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from cropdx_hf.modeling.transforms import batch_transform, channels_last


class CachedActivations(Dataset):
    """Trainer-ready rows `{"pixel_values": activation, "labels": label}`, with the teacher's logits for the same
    view when training distils (`cropdx_hf.training.distill`); activations in fp16 to halve the memory. `photos`
    names the source row of each view, so the views of some photos can be set apart (cross-validation folds)."""

    def __init__(self, activations: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor | None = None,
                 photos: torch.Tensor | None = None):
        self.activations = activations
        self.labels = labels
        self.teacher_logits = teacher_logits
        self.photos = torch.arange(len(labels)) if photos is None else photos

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        row = {"pixel_values": self.activations[i].float(), "labels": self.labels[i]}
        if self.teacher_logits is not None:
            row["teacher_logits"] = self.teacher_logits[i]
        return row

    def __add__(self, other: CachedActivations) -> CachedActivations:
        """Both caches' rows; where only one has teacher logits, the other's rows get NaN ones (untaught rows,
        which the distillation loss leaves to their labels)."""
        teacher = None
        if self.teacher_logits is not None or other.teacher_logits is not None:
            teacher = torch.cat([_teacher_or_nan(self, other), _teacher_or_nan(other, self)])
        return CachedActivations(torch.cat([self.activations, other.activations]),
                                 torch.cat([self.labels, other.labels]), teacher,
                                 torch.cat([self.photos, other.photos + _photo_count(self)]))

    def select(self, keep: torch.Tensor) -> CachedActivations:
        """The rows where the boolean mask `keep` is set."""
        teacher = None if self.teacher_logits is None else self.teacher_logits[keep]
        return CachedActivations(self.activations[keep], self.labels[keep], teacher, self.photos[keep])

    def mapped(self, net: torch.nn.Module, batch_size: int = 32) -> CachedActivations:
        """The same rows passed through a frozen `net` (e.g. pooled features for a head-only stage)."""
        device = next(net.parameters()).device
        outs = [net(chunk.to(device).float()).half().cpu() for chunk in self.activations.split(batch_size)]
        return CachedActivations(torch.cat(outs), self.labels, self.teacher_logits, self.photos)


def _teacher_or_nan(cache: CachedActivations, other: CachedActivations) -> torch.Tensor:
    if cache.teacher_logits is not None:
        return cache.teacher_logits
    return torch.full((len(cache), other.teacher_logits.shape[1]), float("nan"))


def _photo_count(cache: CachedActivations) -> int:
    return int(cache.photos.max()) + 1 if len(cache.photos) else 0


@torch.no_grad()  # not inference_mode: cached tensors later feed autograd
def cache_activations(
    trunk: torch.nn.Module, rows: datasets.Dataset, transform, *, views: int | Sequence[int] = 1,
    batch_size: int = 64, device: str = "cpu", seed: int = 42, num_workers: int = 0, desc: str = "caching",
    teacher: torch.nn.Module | None = None,
) -> CachedActivations:
    """Passes over `rows` through `transform` (random views when it augments): `views` per row, or one count
    per row (pass k covers the rows with more than k views). With a `teacher`, its logits for each view too."""
    torch.manual_seed(seed)
    trunk = trunk.eval().to(device)
    teacher = teacher.eval().to(device) if teacher is not None else None
    counts = np.full(len(rows), views) if isinstance(views, int) else np.asarray(views)
    acts, labels, taught, photos = [], [], [], []
    for k in range(int(counts.max(initial=0))):
        covered = np.flatnonzero(counts > k)
        photos.append(torch.as_tensor(covered))
        subset = rows if len(covered) == len(rows) else rows.select(covered)
        loader = DataLoader(subset.with_transform(batch_transform(transform)), batch_size=batch_size,
                            num_workers=num_workers)
        for batch in tqdm(loader, desc=desc, leave=False):
            pixels = torch.stack(batch["pixel_values"]) if isinstance(batch["pixel_values"], list) \
                else batch["pixel_values"]
            pixels = channels_last(pixels.to(device))
            acts.append(trunk(pixels).half().cpu())
            labels.append(torch.as_tensor(batch["labels"]))
            if teacher is not None:
                taught.append(teacher(pixels).float().cpu())
    return CachedActivations(torch.cat(acts), torch.cat(labels), torch.cat(taught) if taught else None,
                             torch.cat(photos))
