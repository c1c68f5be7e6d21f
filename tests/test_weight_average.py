"""The weight average is what the Trainer evaluates and keeps; training steps and resumes run on the raw weights."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import Dataset
from transformers import Trainer, TrainerCallback, TrainingArguments

from cropdx_hf.training.model_parts import LogitsWithLoss
from cropdx_hf.training.trainer import StagedTrainer, TrainConfig
from cropdx_hf.training.weight_average import RAW_WEIGHTS, WeightAverageCallback
from tests.conftest import LEAVES, TINY

pytestmark = pytest.mark.slow


class Blobs(Dataset):
    """Three separable classes in 4-D: a toy problem that trains in a second."""

    def __init__(self, n: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.arange(n) % 3
        self.x = torch.randn(n, 4, generator=g) + 2 * torch.nn.functional.one_hot(self.labels, 4).float()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.x[i], "labels": self.labels[i]}


class StopAfterFirstEpoch(TrainerCallback):
    def on_epoch_end(self, args, state, control, **kwargs):
        control.should_training_stop = True


def _train(out, stop_early: bool = False, resume: bool = False) -> tuple[torch.nn.Module, WeightAverageCallback]:
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 3)
    average = WeightAverageCallback(net, decay=0.99)
    args = TrainingArguments(
        output_dir=str(out), num_train_epochs=3, learning_rate=0.05, per_device_train_batch_size=8,
        eval_strategy="epoch", save_strategy="epoch", use_cpu=True, report_to=[], seed=0, logging_steps=1000,
        load_best_model_at_end=False)
    trainer = Trainer(model=LogitsWithLoss(net), args=args, train_dataset=Blobs(64, 0), eval_dataset=Blobs(32, 1),
                      callbacks=[average, *([StopAfterFirstEpoch()] if stop_early else [])])
    trainer.train(resume_from_checkpoint=resume or None)
    return net, average


def test_checkpoints_hold_the_average_and_the_raw_weights_beside_it(tmp_path):
    net, average = _train(tmp_path)
    last = tmp_path / "checkpoint-24"
    saved = {k.removeprefix("net."): v for k, v in load_file(last / "model.safetensors").items()}
    raw = load_file(last / RAW_WEIGHTS)
    for key, value in average.ema.module.state_dict().items():
        assert torch.equal(saved[key], value), "the checkpoint is the average"
        assert torch.equal(net.state_dict()[key], value), "after training the model holds the average"
        assert not torch.equal(raw[key], value), "the raw weights differ from their average"


def test_resume_continues_from_the_raw_weights(tmp_path):
    straight, straight_avg = _train(tmp_path / "straight")
    _train(tmp_path / "stopped", stop_early=True)
    shutil.copytree(tmp_path / "stopped", tmp_path / "resumed")
    resumed, resumed_avg = _train(tmp_path / "resumed", resume=True)
    for key, value in straight.state_dict().items():
        assert torch.allclose(resumed.state_dict()[key], value, atol=1e-6)
        assert torch.allclose(resumed_avg.ema.module.state_dict()[key], straight_avg.ema.module.state_dict()[key],
                              atol=1e-6)


def test_the_recipe_keeps_the_average_when_asked(tmp_path):
    cfg = TrainConfig(data=str(LEAVES), out=str(tmp_path / "m"), backbone="mobilenetv2_100", report_to="none",
                      ema_decay=0.9, **{**TINY, "epochs_top": 0, "epochs_full": 0})
    StagedTrainer(cfg).run()
    checkpoints = list((tmp_path / "m" / "checkpoints" / "head").glob("checkpoint-*"))
    assert checkpoints and all((c / RAW_WEIGHTS).is_file() for c in checkpoints)
    assert json.loads((tmp_path / "m" / "config.json").read_text())["cropdx"]["training"]["ema_decay"] == 0.9
