"""Which cached rows a training epoch draws: lab views and real field photos' views in a set proportion.

Real field photos are few (622 against 8,500 lab training photos), so drawn in proportion to their count they would
hardly move the network; drawn at a fixed share of every epoch (with replacement), they teach what a field photo
looks like while the lab rows keep what a lab leaf looks like. Within the field rows, classes may be balanced: the
field photos' own class mix (Septoria 83 photos, mosaic 29) would otherwise become the model's prior.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset, WeightedRandomSampler
from transformers import Trainer


def row_weights(lab_rows: int, field_labels: np.ndarray, field_share: float, balance: float = 0.0) -> torch.Tensor:
    """Sampling weights for `lab_rows` lab rows followed by field rows with `field_labels`: the field rows hold
    `field_share` of the mass, each class's field rows weighted by (mean class size / class size) ** `balance`
    (0: as they come, 1: every class alike)."""
    counts = np.bincount(field_labels).astype(float)
    per_row = (counts[counts > 0].mean() / counts[field_labels]) ** balance
    field = field_share * per_row / per_row.sum()
    lab = np.full(lab_rows, (1 - field_share) / max(lab_rows, 1))
    return torch.as_tensor(np.concatenate([lab, field]), dtype=torch.double)


def epoch_draws(field_rows: int, field_share: float) -> int:
    """Rows an epoch draws: as many field views as there are, on average, and the lab views that go with them."""
    return max(1, round(field_rows / field_share))


class MixedTrainer(Trainer):
    """A `Trainer` whose epochs draw `draws` rows by `weights` (with replacement), seeded by the run's seed.
    Overriding `_get_train_sampler` is the Trainer's own hook for a custom sampler."""

    def __init__(self, *args, weights: torch.Tensor, draws: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.weights, self.draws = weights, draws

    def _get_train_sampler(self, train_dataset: Dataset | None = None) -> WeightedRandomSampler:
        generator = torch.Generator().manual_seed(self.args.seed)
        return WeightedRandomSampler(self.weights, self.draws, replacement=True, generator=generator)
