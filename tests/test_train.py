"""Real (tiny) training runs on the fixture photos: 64 px, a few epochs, the full three-stage recipe."""

import json
import subprocess
import sys

import datasets
import numpy as np
import pandas as pd
import pytest
import torch

from cropdx_hf.inference.predictor import Predictor
from cropdx_hf.modeling.backbones import create_backbone
from cropdx_hf.training import model_parts
from cropdx_hf.training.feature_cache import cache_activations
from cropdx_hf.training.trainer import INTERPOLATION, STAGE_DONE, StagedTrainer, TrainConfig
from cropdx_hf.training.views import train_transform
from tests.conftest import LEAVES, TINY


def _last_state(folder):
    last = max(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    return json.loads((last / "trainer_state.json").read_text())


@pytest.mark.slow
def test_the_head_stage_learns(tmp_path):
    """The loss on the training photos falls (the fixtures' validation split, one photo per class, is too small
    for its loss to move reliably)."""
    cfg = TrainConfig(data=str(LEAVES), out=str(tmp_path / "m"), backbone="mobilenetv2_100", report_to="none",
                      **{**TINY, "epochs_top": 0, "epochs_full": 0})
    trainer = StagedTrainer(cfg)
    features = model_parts.top_features(trainer.model, cfg.top_stages).eval()
    pooled = trainer._caches_for_top()["train"].mapped(features)

    def training_loss() -> float:
        with torch.no_grad():
            logits = trainer.model.get_classifier()(pooled.activations.float())
        return torch.nn.functional.cross_entropy(logits, pooled.labels).item()

    before = training_loss()
    trainer.run()
    evaluations = [e for e in _last_state(tmp_path / "m" / "checkpoints" / "head")["log_history"] if "eval_loss" in e]
    assert len(evaluations) == TINY["epochs_head"], "evaluated every epoch"
    assert training_loss() < 0.8 * before


@pytest.mark.slow
def test_trainable_parameters_per_stage(trained):
    trainer, _ = trained
    model, history = trainer.model, trainer.history
    head = sum(p.numel() for p in model.get_classifier().parameters())
    top = sum(p.numel() for p in model_parts.top(model, 2).parameters())
    assert head == 1280 * 15 + 15
    assert history["head"]["trainable_params"] == head
    assert history["top"]["trainable_params"] == top
    assert history["full"]["trainable_params"] == sum(p.numel() for p in model.parameters())
    assert head < top < history["full"]["trainable_params"]


@pytest.mark.slow
def test_model_folder_records_the_run_and_reloads_identically(trained):
    trainer, out = trained
    for name in ("config.json", "model.safetensors", "metrics.json", "split.csv"):
        assert (out / name).is_file()
    for stage in ("head", "top", "full"):
        assert (out / "checkpoints" / stage / STAGE_DONE).is_file()
        assert list((out / "checkpoints" / stage).glob("checkpoint-*"))
    assert list((out / "runs" / "head").rglob("events.out.tfevents.*")), "TensorBoard logs by default"
    meta = json.loads((out / "config.json").read_text())["cropdx"]
    assert meta["data_fingerprint"] == trainer.data.fingerprint
    assert meta["training"]["backbone"] == "mobilenetv2_100" and meta["training"]["seed"] == 42
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["validation"]["n"] == len(trainer.splits["validation"])
    assert 0.0 <= metrics["validation"]["macro_f1"] <= 1.0

    images = sorted(LEAVES.glob("*/*"))[:6]
    reloaded = Predictor.from_folder(out)
    # other tests calibrate this shared model in place: compare at the temperature it now stores
    in_memory = Predictor(trainer.model.cpu(), trainer.data.class_names, temperature=reloaded.temperature)
    assert json.loads((out / "config.json").read_text())["pretrained_cfg"]["input_size"] == [3, 64, 64]
    assert torch.allclose(reloaded.probabilities(images), in_memory.probabilities(images), atol=1e-5)


@pytest.mark.slow
def test_early_stopping_ends_a_stage_that_stops_improving(tmp_path):
    cfg = TrainConfig(data=str(LEAVES), out=str(tmp_path / "m"), backbone="mobilenetv2_100", report_to="none",
                      patience=1, **{**TINY, "epochs_head": 10, "lr_head": 0.0, "epochs_top": 0, "epochs_full": 0})
    trainer = StagedTrainer(cfg)
    trainer.run()
    assert trainer.history["head"]["epochs_run"] == 2  # epoch 1 sets the best, epoch 2 fails to beat it
    assert trainer.history["top"] == {"skipped": True}


@pytest.mark.slow
def test_resume_skips_finished_stages_and_continues(trained, tmp_path):
    import shutil

    _, out = trained
    copy = tmp_path / "model"
    shutil.copytree(out, copy)
    (copy / "checkpoints" / "full" / STAGE_DONE).unlink()  # as if stopped during stage 3
    (copy / "model.safetensors").unlink()
    before = json.loads((copy / "checkpoints" / "top" / "stage.json").read_text())
    cfg = TrainConfig(data=str(LEAVES), out=str(copy), backbone="mobilenetv2_100", resume=True,
                      report_to="none", **TINY)
    trainer = StagedTrainer(cfg)
    trainer.run()
    assert trainer.history["top"] == before, "a finished stage is loaded, not retrained"
    assert (copy / "checkpoints" / "full" / STAGE_DONE).is_file() and (copy / "model.safetensors").is_file()


@pytest.mark.slow
def test_two_process_data_parallel_training(tmp_path):
    out = tmp_path / "ddp"
    args = ["train", "--data", str(LEAVES), "--out", str(out), "--backbone", "mobilenetv2_100",
            "--report_to", "none", *[f"--{k}={v}" for k, v in TINY.items()]]
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
         "-m", "cropdx_hf.cli", *args], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    state = _last_state(out / "checkpoints" / "full")
    train_rows = sum(1 for line in (out / "split.csv").read_text().splitlines() if line.endswith(",train"))
    # two processes share each epoch: each takes half the rows, so one epoch is half the single-process steps
    assert state["max_steps"] == -(-train_rows // (2 * TINY["batch_size"]))
    assert (out / "model.safetensors").is_file()


def test_stage_three_keeps_batchnorm_statistics_frozen():
    """Trunk BN adopting leaf batch statistics shifts what the stage-2 top was trained on; the weights still learn."""
    net = create_backbone("mobilenetv2_100", num_classes=3)
    wrapped = model_parts.LogitsWithLoss(net, frozen_norm=True).train()
    before = net.bn1.running_mean.clone(), net.bn1.weight.clone()
    out = wrapped(torch.randn(4, 3, 64, 64) * 3 + 1, torch.tensor([0, 1, 2, 0]))
    out["loss"].backward()
    torch.optim.SGD(net.parameters(), lr=0.1).step()
    assert net.training and not net.bn1.training
    assert torch.equal(net.bn1.running_mean, before[0]), "running statistics must not move"
    assert not torch.equal(net.bn1.weight, before[1]), "the affine BN weights still train"
    unfrozen = model_parts.LogitsWithLoss(net).train()
    unfrozen(torch.randn(4, 3, 64, 64) * 3 + 1)
    assert not torch.equal(net.bn1.running_mean, before[0])


def test_logit_adjustment_shifts_the_training_loss_only():
    """Rare classes get a larger margin in the loss; evaluation logits stay the model's own."""
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 3)
    adjustment = torch.log(torch.tensor([0.8, 0.15, 0.05]))
    wrapped = model_parts.LogitsWithLoss(net, logit_adjustment=adjustment)
    x, labels = torch.randn(5, 4), torch.tensor([2, 2, 1, 0, 2])
    assert torch.allclose(wrapped.train()(x)["logits"], net(x) + adjustment)
    assert torch.equal(wrapped.eval()(x)["logits"], net(x))
    rare_loss = torch.nn.functional.cross_entropy(net(x) + adjustment, labels)
    assert wrapped.train()(x, labels)["loss"] > torch.nn.functional.cross_entropy(net(x), labels)
    assert torch.isclose(wrapped.train()(x, labels)["loss"], rare_loss)
    assert "logit_adjustment" not in wrapped.state_dict(), "a loss term, not part of saved checkpoints"


def test_logit_adjustment_follows_the_class_prior_a_stage_trains_on(tmp_path):
    trainer = StagedTrainer(TrainConfig(data=str(LEAVES), out=str(tmp_path), backbone="mobilenetv2_100",
                                        logit_adjustment=0.5, **TINY))
    labels = [0, 0, 0, 1, 2, 2]
    counts = torch.ones(len(trainer.data.class_names))  # a class absent from the rows counts as one
    counts[:3] = torch.tensor([3.0, 1.0, 2.0])
    assert torch.allclose(trainer.logit_adjustment(labels), 0.5 * torch.log(counts / counts.sum()))


def test_rare_classes_get_more_cached_views(tmp_path):
    cfg = TrainConfig(data=str(LEAVES), out=str(tmp_path), backbone="mobilenetv2_100", **TINY)
    trainer = StagedTrainer(cfg)
    labels = [0] * 10 + [1] * 10 + [2] * 4 + [3]
    trainer.splits = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"label": labels})})
    assert trainer.views_per_photo().tolist() == [1] * len(labels), "off by default: train_views for every photo"
    cfg.train_views, cfg.max_views = 2, 8
    # median class size 7: 2 x 7/4 = 3.5 -> 4 views for class 2, 2 x 7 = 14 -> capped at 8 for class 3
    assert trainer.views_per_photo().tolist() == [2] * 20 + [4] * 4 + [8]


def test_the_cache_holds_as_many_views_as_asked_per_photo(fixture_dataset):
    rows = fixture_dataset.rows.select(range(5))
    transform = train_transform({"input_size": (3, 32, 32), "mean": (0.5,) * 3, "std": (0.5,) * 3})
    trunk = torch.nn.AvgPool2d(4)
    cache = cache_activations(trunk, rows, transform, views=[1, 3, 1, 2, 1], batch_size=2)
    assert cache.activations.shape == (8, 3, 8, 8)
    expected = [rows["label"][i] for i in (0, 1, 2, 3, 4, 1, 3, 1)]  # pass k covers the rows with more than k views
    assert cache.labels.tolist() == expected
    first, second = cache.activations[1], cache.activations[5]
    assert not torch.equal(first, second), "each view of a photo is a new random augmentation"


@pytest.mark.slow
def test_plain_cross_entropy_by_default(trained):
    trainer, _ = trained
    assert trainer.cfg.logit_adjustment == 0 and trainer.logit_adjustment([0, 1, 1]) is None


@pytest.mark.slow
def test_validation_and_the_saved_model_use_the_evaluation_size(tmp_path):
    """Training views at image_size; validation cache, evaluation and the saved preprocessing at the larger
    evaluation size with the whole photo."""
    cfg = TrainConfig(data=str(LEAVES), out=str(tmp_path / "m"), backbone="mobilenetv2_100", report_to="none",
                      eval_image_size=96, eval_crop_pct=1.0, **{**TINY, "epochs_head": 0, "epochs_top": 0,
                                                                 "epochs_full": 0})
    trainer = StagedTrainer(cfg)
    caches = trainer._caches_for_top()
    assert caches["train"].activations.shape[-1] * 96 == caches["validation"].activations.shape[-1] * 64
    trainer.run()
    saved = json.loads((tmp_path / "m" / "config.json").read_text())["pretrained_cfg"]
    assert saved["input_size"] == [3, 96, 96] and saved["crop_pct"] == 1.0
    assert Predictor.from_folder(tmp_path / "m").pixels([sorted(LEAVES.glob("*/*"))[0]]).shape == (1, 3, 96, 96)


def _plantdoc_named_folder(root):
    """Fixture photos filed under PlantDoc's class names, with one class we do not have."""
    named = (("Tomato leaf late blight", "Tomato_Late_blight"), ("Tomato leaf", "Tomato_healthy"),
             ("Potato leaf early blight", "Potato___Early_blight"), ("Corn leaf blight", "Tomato_healthy"))
    for folder, source in named:
        (root / folder).mkdir(parents=True)
        for photo in sorted(LEAVES.glob(f"{source}/*")):
            (root / folder / photo.name).write_bytes(photo.read_bytes())
    return root


@pytest.mark.slow
def test_real_field_photos_are_cross_validated_then_all_trained_on(tmp_path):
    """Field photos named as PlantDoc names them are mapped onto our classes (a class we do not have is left out),
    each fold's run trains without that fold's photos and scores them, the weight mix is the best out-of-fold one
    above the lab floor, and the final model trains on all of them and records every photo's out-of-fold logits."""
    field = _plantdoc_named_folder(tmp_path / "plantdoc")
    start = tmp_path / "start"
    StagedTrainer(TrainConfig(data=str(LEAVES), out=str(start), backbone="mobilenetv2_100", report_to="none",
                              **{**TINY, "epochs_top": 0, "epochs_full": 0})).run()
    cfg = TrainConfig(data=str(LEAVES), out=str(tmp_path / "m"), backbone="mobilenetv2_100", report_to="none",
                      init_from=str(start), interpolate=True, field_data=[str(field)], folds=3, field_views=2,
                      lab_floor=0.0, **{**TINY, "epochs_head": 1, "epochs_top": 1, "epochs_full": 0})
    trainer = StagedTrainer(cfg)
    names = trainer.data.class_names
    expected = {names.index(c) for c in ("Tomato_Late_blight", "Tomato_healthy", "Potato___Early_blight")}
    assert set(trainer.field_labels.tolist()) == expected and len(trainer.field_labels) == 9
    caches = trainer._caches_for_top()
    assert len(caches["field"]) == 2 * 9 and len(caches["field_eval"]) == 9
    folds = np.asarray(trainer.field_rows["fold"])
    trainer.restart(held_out=1)
    rows, weights = trainer._training_rows(caches)
    lab = len(caches["train"])
    kept = caches["field"].select(torch.as_tensor(folds)[caches["field"].photos] != 1)
    assert len(rows) == lab + len(kept) and not (folds[kept.photos.numpy()] == 1).any()
    assert float(weights[lab:].sum()) == pytest.approx(cfg.field_share)
    trainer.restart(held_out=None)
    trainer.run()
    crossval = trainer.history["crossval"]
    assert crossval["folds"] == 3 and set(crossval["candidates"]) == {str(a) for a in INTERPOLATION}
    best = max(crossval["candidates"].values(), key=lambda m: m["accuracy"])
    assert crossval["out_of_fold"]["accuracy"] == best["accuracy"]
    assert trainer.history["interpolation"]["alpha"] == crossval["alpha"]
    table = pd.read_csv(tmp_path / "m" / "field_out_of_fold.csv")
    assert sorted(table["file"]) == sorted(trainer.field_rows["file"]) and table["fold"].tolist() == folds.tolist()
    logits = table[[f"logit_{c}" for c in names]].to_numpy()
    assert (logits.argmax(-1) == trainer.field_labels).mean() == pytest.approx(crossval["out_of_fold"]["accuracy"])
    recorded = json.loads((tmp_path / "m" / "config.json").read_text())["cropdx"]["field_data"]
    assert recorded["sources"] == [str(field)] and recorded["photos"] == 9 and recorded["folds"] == 3
    for scores in (tmp_path / "m" / "crossval").glob("fold*.npz"):  # re-score the finished folds at 96 px
        scores.unlink()
    rescored = StagedTrainer(TrainConfig(**{**vars(cfg), "resume": True, "eval_image_size": 96}))
    rescored.run()
    assert rescored._caches["field_eval"].activations.shape[-1] * 64 == caches["field_eval"].activations.shape[-1] * 96
    assert "train" not in rescored._caches, "finished folds and stages are re-scored from the eval views alone"
    assert rescored.history["crossval"]["folds"] == 3


@pytest.mark.slow
def test_a_starting_model_as_teacher_anchors_only_the_lab_rows(tmp_path):
    """--teacher START --distill_field false (learning without forgetting): the lab views carry the start's
    logits, the real field views none, so they learn their labels alone."""
    field = _plantdoc_named_folder(tmp_path / "plantdoc")
    start = tmp_path / "start"
    StagedTrainer(TrainConfig(data=str(LEAVES), out=str(start), backbone="mobilenetv2_100", report_to="none",
                              **{**TINY, "epochs_top": 0, "epochs_full": 0})).run()
    cfg = TrainConfig(data=str(LEAVES), out=str(tmp_path / "m"), backbone="mobilenetv2_100", report_to="none",
                      init_from=str(start), teacher=str(start), distill_field=False, field_data=[str(field)],
                      folds=3, field_views=2, **{**TINY, "epochs_head": 0, "epochs_top": 1, "epochs_full": 0})
    trainer = StagedTrainer(cfg)
    caches = trainer._caches_for_top()
    assert caches["field"].teacher_logits is None and torch.isfinite(caches["train"].teacher_logits).all()
    rows, _ = trainer._training_rows(caches)
    taught = torch.isfinite(rows.teacher_logits).all(-1)
    assert taught.sum() == len(caches["train"]) and not taught[len(caches["train"]):].any()
    trainer.restart(held_out=None)
    trainer.run_stage("top")  # the mixed loss trains on taught and untaught rows alike
    assert trainer.history["top"]["epochs_run"] == 1


@pytest.mark.slow
def test_field_training_validates_on_lab_and_field_proxy_and_mixes_back(tmp_path, field_photos):
    cfg = TrainConfig(data=str(LEAVES), out=str(tmp_path / "m"), backbone="mobilenetv2_100", report_to="none",
                      field_photos=str(field_photos), **{**TINY, "epochs_top": 1, "epochs_full": 0})
    first = StagedTrainer(cfg)
    first.run()
    lab = len(first.splits["validation"])
    assert len(first.validation_rows) == 2 * lab  # the lab photos, then each one's field-proxy view
    head = first.history["head"]["validation"]
    assert head["checkpoint_score"] == pytest.approx((head["macro_f1"] + head["field_macro_f1"]) / 2)
    cfg = TrainConfig(**{**vars(cfg), "out": str(tmp_path / "again"), "init_from": str(tmp_path / "m"),
                         "interpolate": True})
    again = StagedTrainer(cfg)
    again.run()
    mix = again.history["interpolation"]
    assert set(mix["candidates"]) == {str(alpha) for alpha in INTERPOLATION}
    floor = mix["candidates"]["0.0"]["macro_f1"]  # the starting weights: no lab regression below them
    allowed = [m for m in mix["candidates"].values() if m["macro_f1"] >= floor]
    assert mix["validation"] == max(allowed, key=lambda m: m["checkpoint_score"])
    metrics = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert set(metrics["field_proxy"]) == {"validation", "test"}
