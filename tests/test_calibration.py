import numpy as np
import pytest

from cropdx_hf.evaluation import calibration
from cropdx_hf.evaluation.predictions import SplitLogits
from cropdx_hf.evaluation.report import confused_pairs, write_report
from cropdx_hf.evaluation.scores import full_metrics


def test_ece_known_answers():
    labels = np.array([0, 0, 1, 1])
    sure_and_right = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    assert calibration.expected_calibration_error(sure_and_right, labels) == 0.0
    sure_half_wrong = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    assert calibration.expected_calibration_error(sure_half_wrong, labels) == pytest.approx(0.5)


def test_temperature_recovers_a_known_overconfidence():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2, (4000, 5))
    labels = np.array([rng.choice(5, p=p) for p in calibration.softmax(true_logits)])
    fitted = calibration.fit_temperature(3.0 * true_logits, labels)  # a model 3x too sure of itself
    assert fitted == pytest.approx(3.0, rel=0.1)
    before = calibration.expected_calibration_error(calibration.softmax(3.0 * true_logits), labels)
    after = calibration.expected_calibration_error(calibration.softmax(3.0 * true_logits, fitted), labels)
    assert after < before / 3


def test_selective_accuracy_and_coverage():
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.45, 0.55]])
    labels = np.array([0, 1, 1, 0])
    result = calibration.selective(probs, labels, 0.7)
    assert result == {"threshold": 0.7, "coverage": 0.5, "selective_accuracy": 1.0}
    assert calibration.selective(probs, labels, 0.5)["selective_accuracy"] == pytest.approx(0.5)


def test_threshold_choice_keeps_the_floor_and_explains_itself():
    high = [{"threshold": t, "coverage": 1.0, "selective_accuracy": 0.999} for t in (0.3, 0.5, 0.8)]
    chosen, reason = calibration.choose_threshold({"lab": high})
    assert chosen == 0.70 and "floor" in reason
    late = [{"threshold": 0.5, "coverage": 1.0, "selective_accuracy": 0.98},
            {"threshold": 0.85, "coverage": 0.9, "selective_accuracy": 0.996}]
    assert calibration.choose_threshold({"lab": late})[0] == 0.85


def test_the_threshold_must_hold_on_real_field_photos_too():
    lab = [{"threshold": t, "coverage": 1.0, "selective_accuracy": 0.999} for t in (0.7, 0.8, 0.9)]
    field = [{"threshold": t, "coverage": c, "selective_accuracy": a}
             for t, c, a in ((0.7, 0.9, 0.85), (0.8, 0.7, 0.89), (0.9, 0.5, 0.92))]
    chosen, reason = calibration.choose_threshold({"lab": lab, "field": field})
    assert chosen == 0.9 and "90.0% on answered real field photos" in reason
    never = [{**row, "selective_accuracy": 0.5} for row in field]
    chosen, reason = calibration.choose_threshold({"lab": lab, "field": never})
    assert "no threshold reached" in reason and chosen == 0.9  # the least short of every target


def test_a_field_target_that_leaves_the_lab_unanswered_gives_way_and_says_so():
    thresholds = (0.7, 0.8, 0.9, 0.99)
    lab = [{"threshold": t, "coverage": c, "selective_accuracy": a}
           for t, c, a in zip(thresholds, (0.98, 0.95, 0.9, 0.01), (0.99, 0.996, 0.998, 1.0), strict=True)]
    field = [{"threshold": t, "coverage": c, "selective_accuracy": a}
             for t, c, a in zip(thresholds, (0.5, 0.4, 0.3, 0.01), (0.8, 0.85, 0.9, 1.0), strict=True)]
    field = [{**row, "selective_accuracy": a} for row, a in zip(field, (0.8, 0.85, 0.88, 1.0), strict=True)]
    chosen, reason = calibration.choose_threshold({"lab": lab, "field": field})
    assert chosen == 0.8 and "field target of 90% on answered real field photos" in reason
    assert "is not reached" in reason


def test_a_field_target_out_of_reach_keeps_the_lab_answered():
    """No threshold reaches the field target and the closest one answers 91 % of lab photos: the threshold is the
    highest that still answers 95 % of them, above the one the lab target alone would take."""
    thresholds = (0.7, 0.75, 0.8, 0.85, 0.89)
    lab = [{"threshold": t, "coverage": c, "selective_accuracy": a} for t, c, a in
           zip(thresholds, (0.97, 0.962, 0.951, 0.933, 0.911), (0.995, 0.995, 0.997, 0.998, 0.999), strict=True)]
    field = [{"threshold": t, "coverage": c, "selective_accuracy": a} for t, c, a in
             zip(thresholds, (0.45, 0.39, 0.33, 0.25, 0.18), (0.54, 0.55, 0.56, 0.61, 0.64), strict=True)]
    assert calibration._lowest_reaching(list(thresholds), {"lab": lab, "field": field})[0] == 0.89
    chosen, reason = calibration.choose_threshold({"lab": lab, "field": field})
    assert chosen == 0.8 and "95%" in reason
    strict = [{**row, "selective_accuracy": a} for row, a in zip(lab, (0.99, 0.99, 0.99, 0.996, 0.999), strict=True)]
    chosen, reason = calibration.choose_threshold({"lab": strict, "field": field})
    assert chosen == 0.85 and "so does the lab target: 0.85 is the lowest threshold reaching 99.5%" in reason


def test_full_metrics_on_a_case_with_known_answers(fixture_dataset):
    names = ["Tomato_healthy", "Tomato_Late_blight", "Potato___Late_blight"]
    labels = np.array([0, 0, 1, 1, 2, 2])
    logits = np.log(np.array([
        [0.8, 0.1, 0.1], [0.3, 0.6, 0.1],     # class 0: one right, one called class 1
        [0.1, 0.8, 0.1], [0.1, 0.65, 0.25],   # class 1: both right
        [0.1, 0.1, 0.8], [0.05, 0.9, 0.05],   # class 2: one right, one called class 1 (cross-crop)
    ]))
    pred = SplitLogits(logits, labels, fixture_dataset.rows.select(range(6)), names)
    m = full_metrics(pred, threshold=0.7)
    assert m["accuracy"] == pytest.approx(4 / 6)
    # class 1: precision 2/4, recall 1 -> F1 2/3; classes 0 and 2: precision 1, recall 1/2 -> F1 2/3
    assert m["macro_f1"] == pytest.approx(2 / 3)
    assert m["per_class"]["Tomato_Late_blight"] == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3),
                                                    "support": 2}
    assert m["top3_accuracy"] == 1.0 and m["n"] == 6
    assert m["at_threshold"]["coverage"] == pytest.approx(4 / 6)  # the 0.8s and the 0.9 are answered
    assert m["at_threshold"]["selective_accuracy"] == pytest.approx(3 / 4)
    assert m["ece_before_calibration"] == m["ece_after_calibration"]  # temperature 1
    matrix = np.array([[1, 1, 0], [0, 2, 0], [0, 1, 1]])
    assert confused_pairs(matrix, names) == [
        {"true": "Tomato_healthy", "predicted": "Tomato_Late_blight", "count": 1, "rate": 0.5},
        {"true": "Potato___Late_blight", "predicted": "Tomato_Late_blight", "count": 1, "rate": 0.5}]


def test_the_report_draws_its_plots_from_the_logits(fixture_dataset, tmp_path):
    names = list(fixture_dataset.class_names)
    rows = fixture_dataset.rows.select(range(30))
    labels = np.asarray(rows["label"])
    logits = np.eye(len(names))[labels] * 4 + np.random.default_rng(0).normal(0, 1, (30, len(names)))
    pred = SplitLogits(logits, labels, rows, names)
    metrics = full_metrics(pred, threshold=0.7)
    write_report(pred, metrics, 0.7, tmp_path)
    for plot in ("confusion_matrix", "reliability", "threshold_sweep", "correct", "incorrect"):
        assert (tmp_path / f"{plot}.png").stat().st_size > 5_000, plot
    assert f"{metrics['accuracy']:.4f}" in (tmp_path / "report.md").read_text()


def test_calibrate_records_temperature_and_threshold_in_the_metadata(fixture_dataset, tmp_path):
    """On a model with an untrained head: the numbers are poor, but fitted, chosen and recorded."""
    from cropdx_hf.data.splits import split_dataset
    from cropdx_hf.evaluation.calibrate import calibrate
    from cropdx_hf.labels import CLASS_IDS
    from cropdx_hf.modeling.backbones import create_backbone
    from cropdx_hf.modeling.folder import save_model_folder
    from cropdx_hf.modeling.metadata import ReleaseMetadata

    model_dir = save_model_folder(create_backbone("mobilenetv2_100", num_classes=15), tmp_path / "m", list(CLASS_IDS))
    split_dataset(fixture_dataset, model_dir / "split.csv")
    result = calibrate(model_dir, fixture_dataset)
    recorded = ReleaseMetadata.read(model_dir)
    assert recorded.temperature == result.temperature > 0 and 0.7 <= recorded.threshold < 1
    validation = split_dataset(fixture_dataset, model_dir / "split.csv")["validation"]
    assert recorded.calibration["lab"]["n"] == len(validation)
    assert "no threshold reached" in recorded.threshold_reason
