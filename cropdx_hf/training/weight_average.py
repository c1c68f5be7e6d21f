"""An exponential moving average of the weights that the `Trainer` evaluates, checkpoints and keeps as best.

The averaging itself is timm's `ModelEmaV3`; this callback only decides when the `Trainer` sees it. Training
steps always run on the raw weights; at each epoch end the average takes their place, so evaluation, the
checkpoint and the best-by-macro-F1 choice all see the average, and the raw weights return before the next
step. A checkpoint stores the raw weights beside it, so `--resume` continues training exactly where it stopped.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from timm.utils import ModelEmaV3
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

RAW_WEIGHTS = "raw_weights.safetensors"


class WeightAverageCallback(TrainerCallback):
    def __init__(self, net: torch.nn.Module, decay: float):
        # warm-up: the average starts short (decay 1 - (1 + step)^-0.75) so that a stage of a few hundred steps
        # is not dominated by its first, still untrained weights
        self.net = net
        self.ema = ModelEmaV3(net, decay=decay, use_warmup=True, warmup_power=0.75)
        self.raw: dict[str, torch.Tensor] | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.global_step == 0:
            return
        # resumed: the Trainer loaded the checkpoint's weights, i.e. the average; the raw ones lie beside them
        checkpoint = Path(get_last_checkpoint(args.output_dir))
        self.ema.set(self.net)
        self.net.load_state_dict(load_file(checkpoint / RAW_WEIGHTS))

    def on_step_begin(self, args, state, control, **kwargs):
        if self.raw is not None:
            self.net.load_state_dict(self.raw)
            self.raw = None

    def on_step_end(self, args, state, control, **kwargs):
        self.ema.update(self.net, step=state.global_step)

    def on_epoch_end(self, args, state, control, **kwargs):
        self.raw = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
        self.net.load_state_dict(self.ema.module.state_dict())

    def on_save(self, args, state, control, **kwargs):
        if self.raw is not None and state.is_world_process_zero:
            folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
            save_file({k: v.contiguous() for k, v in self.raw.items()}, folder / RAW_WEIGHTS)
