"""ONNX/INT8 export of the tiny fixture-trained model, and inference that never imports torch."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from cropdx_hf.cli import main
from cropdx_hf.inference.onnx_predictor import OnnxPredictor
from cropdx_hf.inference.predictor import Predictor
from cropdx_hf.labels import display_name
from cropdx_hf.modeling.config import ONNX_FP32
from cropdx_hf.photos import load_image
from cropdx_hf.release.quantize import INT8_SETUPS, quantize
from tests.clean_env import block_imports
from tests.conftest import LEAVES, ROOT

BLOCK_TORCH = block_imports("torch", "torchvision", "timm", "transformers")
IMAGES = sorted(str(p) for p in LEAVES.glob("*/*"))[::5]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    _, model_dir = trained
    exports = tmp_path_factory.mktemp("exports")
    out = exports / model_dir.name
    out.mkdir()
    (out / "model_int8.onnx").write_bytes(b"INT8 file of earlier weights")  # must not survive the export
    assert main(["--exports-dir", str(exports), "export", "--model", str(model_dir), "--data", str(LEAVES),
                 "--split", "all"]) == 0
    return model_dir, out, json.loads((out / "export_metrics.json").read_text())


def test_fp32_export_matches_pytorch(exported):
    _, _, report = exported
    assert report["verify_images"] == 45
    assert report["fp32"]["max_abs_logit_diff_vs_torch"] <= 1e-4
    assert report["fp32"]["p95_ms"] >= report["fp32"]["p50_ms"] > 0


def test_int8_candidates_are_measured_and_the_choice_follows_the_rule(exported):
    _, out, report = exported
    rows = report["int8_candidates"]
    assert [r["setup"] for r in rows] == [s.name for s in INT8_SETUPS]
    for row in rows:
        assert row["size_mb"] < 0.5 * report["fp32"]["size_mb"] and row["p50_ms"] > 0
        if row["p50_ms"] >= report["fp32"]["p50_ms"]:
            assert "skipped" in row and "top1_agreement" not in row
        else:
            assert 0.0 <= row["top1_agreement"] <= 1.0
    int8 = report["int8"]
    kept = [r for r in rows if r.get("top1_agreement", 0) >= 0.99]
    assert (out / "model_int8.onnx").is_file() == bool(kept)
    if kept:
        assert int8["setup"] == min(kept, key=lambda r: r["p50_ms"])["setup"]
        assert int8["recommended"] == (int8["p50_vs_fp32"] <= 0.8 and int8["size_vs_fp32"] <= 0.3
                                       and abs(int8["accuracy_change_points"]) <= 0.5)
    else:
        assert int8["recommended"] is False


def test_optimum_loads_the_export_and_names_the_labels(exported):
    from optimum.onnxruntime import ORTModelForImageClassification
    from transformers import pipeline

    model_dir, out, _ = exported
    ort_model = ORTModelForImageClassification.from_pretrained(out)
    assert ort_model.config.id2label[0] == "Bell pepper: Bacterial spot"
    pipe = pipeline("image-classification", model=ort_model, image_processor=str(model_dir))
    ours = Predictor.from_folder(model_dir)
    ours.temperature = 1.0  # the pipeline knows nothing of our calibration
    assert pipe(IMAGES[0], top_k=1)[0]["label"] == display_name(ours.predict(IMAGES[0], top_k=1)[0].class_name)


def test_onnx_predictor_matches_pytorch_top3(exported):
    model_dir, out, _ = exported
    torch_pred, onnx_pred = Predictor.from_folder(model_dir), OnnxPredictor(out, ONNX_FP32)
    assert onnx_pred.temperature == torch_pred.temperature
    expected = torch_pred.transform(load_image(IMAGES[0])).numpy()
    assert np.abs(onnx_pred.preprocess(IMAGES[0]) - expected).max() < 1e-5
    torch_features, onnx_features = torch_pred.forward(IMAGES)[1].numpy(), onnx_pred.forward(IMAGES)[1]
    assert onnx_features.shape == torch_features.shape and np.abs(onnx_features - torch_features).max() < 1e-3
    for image in IMAGES:
        a, b = torch_pred.predict(image), onnx_pred.predict(image)
        assert [p.class_name for p in a] == [p.class_name for p in b]
        assert all(abs(x.probability - y.probability) < 1e-4 for x, y in zip(a, b, strict=True))


def test_cropdx_predict_onnx_never_imports_torch(exported):
    model_dir, out, _ = exported
    argv = ["predict", "--onnx", str(out), "--json", IMAGES[1]]
    code = BLOCK_TORCH + f"from cropdx_hf.cli import main\nsys.exit(main({argv!r}))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    answer = json.loads(result.stdout)[IMAGES[1]]
    expected = Predictor.from_folder(model_dir)
    assert expected.gate is None  # the fixture model has no leaf gate, in either path
    reference = expected.diagnose(IMAGES[1]).to_dict()
    assert [p["class_name"] for p in answer["predictions"]] == [p["class_name"] for p in reference["predictions"]]
    assert answer["status"] == reference["status"] and answer["treatment"] == reference["treatment"]


def test_the_docs_snippet_runs_without_torch_and_agrees(exported):
    model_dir, out, _ = exported
    page = (ROOT / "docs" / "onnx.md").read_text()
    snippet = re.search(r"<!-- onnx-snippet -->\n```python\n(.*?)```", page, re.S).group(1)
    result = subprocess.run([sys.executable, "-c", BLOCK_TORCH + snippet, str(out), IMAGES[2]],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    names = [line.split("\t")[0] for line in result.stdout.strip().splitlines()]
    assert names == [display_name(p.class_name) for p in Predictor.from_folder(model_dir).predict(IMAGES[2])]


def test_same_padding_is_fixed_for_export_and_the_logits_stay(tmp_path):
    import onnx
    import timm
    import torch

    from cropdx_hf.release.export import fix_same_padding

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=3).eval()
    pixels = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        before = model(pixels)
        fix_same_padding(model, (3, 224, 224))
        after = model(pixels)
    assert torch.allclose(before, after, atol=1e-5)
    torch.onnx.export(model, (pixels[:1],), str(tmp_path / "m.onnx"), input_names=["pixel_values"],
                      dynamic_axes={"pixel_values": {0: "batch"}}, opset_version=17, dynamo=False)
    ops = {node.op_type for node in onnx.load(str(tmp_path / "m.onnx")).graph.node}
    assert "Conv" in ops and "Shape" not in ops  # the padding no longer depends on the input's shape
    int8 = quantize(tmp_path, INT8_SETUPS[0], pixels.numpy(), "q.onnx", source="m.onnx")
    ops = {node.op_type for node in onnx.load(str(int8)).graph.node}
    assert "QLinearConv" in ops and "Pad" not in ops  # folded into the convolutions before quantization
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "q.onnx"]
