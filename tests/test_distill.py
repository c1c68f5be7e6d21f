"""Knowledge distillation: the loss, the teacher reading the student's views, and a tiny run that distils."""

import pytest
import torch
from torch.nn import functional as F

from cropdx_hf.errors import ModelFolderError
from cropdx_hf.modeling.config import class_ids, read_config
from cropdx_hf.training import model_parts
from cropdx_hf.training.distill import Teacher, distillation_loss
from cropdx_hf.training.feature_cache import CachedActivations
from cropdx_hf.training.trainer import StagedTrainer, TrainConfig
from tests.conftest import LEAVES, TINY


def test_the_loss_mixes_the_labels_and_the_teacher():
    torch.manual_seed(0)
    logits, teacher, labels = torch.randn(6, 4), torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 0, 1])
    hard = F.cross_entropy(logits, labels, label_smoothing=0.1)
    assert torch.isclose(distillation_loss(0.0, 2.0, 0.1)({"logits": logits, "teacher_logits": teacher}, labels), hard)
    assert torch.isclose(distillation_loss(0.5, 2.0, 0.1)({"logits": logits}, labels), hard), "validation rows"
    same = distillation_loss(1.0, 2.0, 0.1)({"logits": logits, "teacher_logits": logits + 3.0}, labels)
    assert same.abs() < 1e-6, "logits equal up to a constant: nothing left to learn from the teacher"
    mixed = distillation_loss(0.5, 2.0, 0.1)({"logits": logits, "teacher_logits": teacher}, labels)
    assert mixed > 0.5 * hard


def test_untaught_rows_learn_their_labels_alone():
    """Rows whose teacher logits are NaN (real field views with --distill_field false) get the cross-entropy
    alone; the taught rows keep the mixed loss, so a batch's loss is the mean of the two kinds."""
    torch.manual_seed(0)
    logits, teacher, labels = torch.randn(6, 4, requires_grad=True), torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 0, 1])
    loss = distillation_loss(0.5, 2.0, 0.1)
    untaught = teacher.clone()
    untaught[3:] = float("nan")
    mixed = loss({"logits": logits, "teacher_logits": untaught}, labels)
    taught_part = loss({"logits": logits[:3], "teacher_logits": teacher[:3]}, labels[:3])
    hard_part = F.cross_entropy(logits[3:], labels[3:], label_smoothing=0.1)
    assert torch.isclose(mixed, (taught_part + hard_part) / 2)
    mixed.backward()
    assert torch.isfinite(logits.grad).all()


def test_a_cache_without_teacher_logits_joins_as_untaught_rows():
    taught = CachedActivations(torch.zeros(3, 2, 1, 1), torch.tensor([0, 1, 2]), torch.ones(3, 5))
    untaught = CachedActivations(torch.zeros(2, 2, 1, 1), torch.tensor([3, 4]))
    for joined, nan_rows in ((taught + untaught, [3, 4]), (untaught + taught, [0, 1])):
        assert joined.teacher_logits.shape == (5, 5)
        assert torch.isnan(joined.teacher_logits).all(-1).nonzero().flatten().tolist() == nan_rows
        assert torch.isfinite(joined.teacher_logits).all(-1).sum() == 3
    assert (untaught + untaught).teacher_logits is None


def test_a_teacher_reads_the_students_views(trained):
    _, folder = trained  # mobilenetv2_100 at 64 px, ImageNet normalisation
    teacher = Teacher(folder, _classes(folder), {"mean": (0.5,) * 3, "std": (0.5,) * 3})
    raw = torch.rand(2, 3, 32, 32)
    own_mean, own_std = (torch.tensor(teacher.net.pretrained_cfg[k]).view(1, 3, 1, 1) for k in ("mean", "std"))
    expected = teacher.net(F.interpolate((raw - own_mean) / own_std, size=(64, 64), mode="bicubic",
                                         align_corners=False))
    assert torch.allclose(teacher((raw - 0.5) / 0.5), expected, atol=1e-4)
    with pytest.raises(ModelFolderError, match="must predict the student's classes"):
        Teacher(folder, _classes(folder)[::-1], {"mean": (0.5,) * 3, "std": (0.5,) * 3})


def _classes(folder):
    return class_ids(read_config(folder))


@pytest.mark.slow
def test_training_distils_from_a_teacher_on_the_cached_views(trained, tmp_path):
    """Distilling a model from itself: the cached path (trunk, then top; BatchNorm on its running statistics) and
    the teacher's full network agree on every view, so the teacher term starts at zero; the run then trains and
    saves as usual."""
    _, folder = trained
    cfg = TrainConfig(data=str(LEAVES), out=str(tmp_path / "m"), backbone="mobilenetv2_100", report_to="none",
                      init_from=str(folder), teacher=str(folder), distill_weight=1.0,
                      **{**TINY, "epochs_top": 1, "epochs_full": 0})
    trainer = StagedTrainer(cfg)
    cached = trainer._caches_for_top()["train"]
    assert cached.teacher_logits.shape == (len(cached), len(trainer.data.class_names))
    student = model_parts.LogitsWithLoss(model_parts.top(trainer.model, cfg.top_stages)).eval()
    batch = [cached[i] for i in range(8)]
    outputs = student(torch.stack([r["pixel_values"] for r in batch]),
                      teacher_logits=torch.stack([r["teacher_logits"] for r in batch]))
    loss = distillation_loss(1.0, cfg.distill_temperature, cfg.label_smoothing)
    assert loss(outputs, torch.stack([r["labels"] for r in batch])) < 1e-3
    trainer.run()
    assert (tmp_path / "m" / "model.safetensors").is_file() and trainer.history["top"]["epochs_run"] == 1


def test_distillation_runs_on_cached_views_only(trained, tmp_path):
    _, folder = trained
    with pytest.raises(ValueError, match="set --epochs-full 0"):
        StagedTrainer(TrainConfig(data=str(LEAVES), out=str(tmp_path), backbone="mobilenetv2_100",
                                  teacher=str(folder), **TINY))
