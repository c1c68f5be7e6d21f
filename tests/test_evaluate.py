"""Calibration, `cropdx evaluate` and model cards on the tiny model trained from the fixture photos."""

import json
import shutil

import numpy as np
import pytest
import yaml

from cropdx_hf.cli import main
from cropdx_hf.evaluation.calibrate import calibrate
from cropdx_hf.evaluation.predictions import predict_split
from cropdx_hf.modeling.config import class_ids, read_config
from cropdx_hf.release.cards import BASE_MODELS, LICENSE, build_card
from cropdx_hf.release.registry import EVAL_DIR
from tests.conftest import LEAVES

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def evaluated(trained):
    _, model_dir = trained
    calibrate(model_dir, LEAVES)
    assert main(["evaluate", "--model", str(model_dir), "--data", str(LEAVES), "--split", "all",
                 "--out", str(model_dir / EVAL_DIR)]) == 0
    return model_dir, json.loads((model_dir / EVAL_DIR / "metrics.json").read_text())


def test_calibration_is_stored_in_the_model_config(evaluated):
    meta = read_config(evaluated[0])["cropdx"]
    assert meta["temperature"] > 0 and 0.3 <= meta["threshold"] < 1.0
    assert meta["threshold_reason"] and meta["calibration"]["lab"]["photos"] == "lab validation photos"
    assert len(meta["calibration"]["lab"]["sweep"]) == 70


def test_evaluate_writes_metrics_plots_and_a_computed_report(evaluated):
    model_dir, m = evaluated
    assert m["n"] == 45 and set(m["per_class"]) <= set(class_ids(read_config(model_dir)))
    for key in ("accuracy", "macro_f1", "weighted_f1", "top3_accuracy", "ece_before_calibration",
                "ece_after_calibration"):
        assert 0.0 <= m[key] <= 1.0, key
    assert m["top3_accuracy"] >= m["accuracy"]
    assert sum(row["support"] for row in m["per_class"].values()) == 45
    for plot in ("confusion_matrix", "correct", "incorrect", "reliability", "threshold_sweep"):
        assert (model_dir / EVAL_DIR / f"{plot}.png").stat().st_size > 5_000, plot
    report = (model_dir / EVAL_DIR / "report.md").read_text()
    assert f"accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}" in report
    assert "Most-confused pairs" in report and "wrong answers" in report


def test_foreign_class_names_are_mapped_and_unknown_ones_listed(evaluated, tmp_path, capsys):
    model_dir, _ = evaluated
    data = tmp_path / "plantdoc"
    shutil.copytree(LEAVES / "Tomato_Early_blight", data / "Tomato Early blight leaf")
    shutil.copytree(LEAVES / "Tomato_healthy", data / "Tomato leaf")
    shutil.copytree(LEAVES / "Tomato_healthy", data / "Apple Scab Leaf")
    assert main(["evaluate", "--model", str(model_dir), "--data", str(data), "--split", "all",
                 "--out", str(tmp_path / "eval")]) == 0
    m = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert m["n"] == 6 and m["skipped_classes"] == ["Apple Scab Leaf"]
    assert set(m["per_class"]) >= {"Tomato_Early_blight", "Tomato_healthy"}
    assert "Apple Scab Leaf" in capsys.readouterr().out


def test_a_folder_with_no_usable_class_is_a_clear_error(evaluated, tmp_path, capsys):
    model_dir, _ = evaluated
    shutil.copytree(LEAVES / "Tomato_healthy", tmp_path / "data" / "Grape leaf")
    assert main(["evaluate", "--model", str(model_dir), "--data", str(tmp_path / "data"),
                 "--out", str(tmp_path / "eval")]) == 2
    assert "none of its classes ['Grape leaf'] maps to a cropdx class" in capsys.readouterr().err


def test_model_card_yaml_and_numbers_come_from_the_measurements(evaluated):
    model_dir, m = evaluated
    card = build_card(model_dir, "cropdx/tiny")
    front = yaml.safe_load(str(card).split("---")[1])
    assert front["license"] == LICENSE and front["library_name"] == "timm"
    assert front["pipeline_tag"] == "image-classification" and "plant-disease" in front["tags"]
    assert front["datasets"] == ["plantvillage"]
    assert front.get("base_model") == BASE_MODELS.get(read_config(model_dir)["architecture"])
    results = front["model-index"][0]["results"][0]
    assert results["dataset"]["split"] == "test"
    values = {metric["name"]: metric["value"] for metric in results["metrics"]}
    assert values == {"Accuracy": round(m["accuracy"], 4), "Macro F1": round(m["macro_f1"], 4),
                      "Top-3 accuracy": round(m["top3_accuracy"], 4)}
    body = card.text
    assert f"| macro-F1 | {m['macro_f1']:.4f} |" in body
    assert read_config(model_dir)["cropdx"]["data_fingerprint"] in body
    assert "Hughes" in body and "Mohanty" in body and "not a substitute" in body


def test_evaluate_at_another_input_size_and_crop(evaluated, tmp_path):
    model_dir, own = evaluated
    assert main(["evaluate", "--model", str(model_dir), "--data", str(LEAVES), "--split", "all",
                 "--image-size", "96", "--crop-pct", "1.0", "--out", str(tmp_path)]) == 0
    other = json.loads((tmp_path / "metrics.json").read_text())
    assert other["n"] == own["n"] and other["preprocessing_override"] == {"image_size": 96, "crop_pct": 1.0}
    saved = predict_split(model_dir, LEAVES, "all")
    larger = predict_split(model_dir, LEAVES, "all", image_size=96, crop_pct=1.0)
    assert not np.allclose(saved.logits, larger.logits), "the photos went in at another size"
    assert read_config(model_dir)["pretrained_cfg"]["input_size"] == [3, 64, 64], "the saved model is unchanged"
