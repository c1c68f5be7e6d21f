"""Knowledge distillation (Hinton et al. 2015, arXiv:1503.02531): the student also learns a stronger model's
class probabilities on the very views it trains on.

Why: a small network taught field views from hard labels alone gives up lab accuracy to learn them; a teacher
that is good at both (a field-trained release) shows on every view how it ranks all the classes, lab and field
alike. The teacher runs once per view while the trunk fills the cache, so stages 1-2 pay nothing per epoch.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from cropdx_hf.errors import ModelFolderError
from cropdx_hf.modeling.config import class_ids
from cropdx_hf.modeling.folder import load_model_folder


class Teacher(nn.Module):
    """A model folder's network that reads the student's views: it undoes the student's normalisation, applies
    its own and resizes to its own input size, so one cached view serves both networks."""

    def __init__(self, model_dir: str | Path, class_names: list[str], student_config: dict[str, Any]):
        super().__init__()
        self.net, config = load_model_folder(model_dir)
        if class_ids(config) != class_names:
            raise ModelFolderError(f"{model_dir}: a teacher must predict the student's classes {class_names}, "
                                   f"not {class_ids(config)}")
        own = self.net.pretrained_cfg
        mean_s, std_s = (torch.tensor(student_config[k]).view(1, 3, 1, 1) for k in ("mean", "std"))
        mean_t, std_t = (torch.tensor(own[k]).view(1, 3, 1, 1) for k in ("mean", "std"))
        self.register_buffer("scale", std_s / std_t)
        self.register_buffer("shift", (mean_s - mean_t) / std_t)
        self.size = int(own["input_size"][-1])
        self.net.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> Teacher:
        return super().train(False)  # a teacher is never trained: BatchNorm keeps its running statistics

    @torch.no_grad()
    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.float() * self.scale + self.shift
        if x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bicubic", align_corners=False)
        return self.net(x)


def distillation_loss(weight: float, temperature: float, label_smoothing: float
                      ) -> Callable[..., torch.Tensor]:
    """A `Trainer` `compute_loss_func`: per row, (1 - weight) x label-smoothed cross-entropy + weight x T^2 x
    KL(teacher || student) at temperature T. Rows without teacher logits (validation; NaN rows: views the teacher
    does not teach) get the cross-entropy alone."""

    def loss(outputs: dict[str, torch.Tensor], labels: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
        logits = outputs["logits"]
        hard = F.cross_entropy(logits, labels, label_smoothing=label_smoothing, reduction="none")
        teacher = outputs.get("teacher_logits")
        if teacher is None:
            return hard.mean()
        taught = torch.isfinite(teacher).all(-1)
        soft = F.kl_div(F.log_softmax(logits / temperature, -1),
                        F.log_softmax(torch.where(taught[:, None], teacher, 0.0) / temperature, -1),
                        log_target=True, reduction="none").sum(-1) * temperature ** 2
        share = weight * taught.float()
        return ((1 - share) * hard + share * soft).mean()

    return loss
