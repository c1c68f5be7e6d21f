import json
import subprocess
import sys

import pytest

from cropdx_hf.errors import ModelFolderError
from cropdx_hf.inference.predictor import Predictor
from cropdx_hf.labels import CLASS_IDS, display_name
from cropdx_hf.modeling.backbones import create_backbone
from cropdx_hf.modeling.config import class_ids, read_config
from cropdx_hf.modeling.folder import load_model_folder, save_model_folder
from cropdx_hf.modeling.metadata import ReleaseMetadata
from tests.clean_env import block_imports
from tests.conftest import LEAVES

CLEAN_LOADERS = block_imports("cropdx_hf") + r'''
import json
try:
    import cropdx_hf  # noqa: F401
    sys.exit("cropdx_hf must not be importable here")
except ImportError:
    pass

import timm, torch
from PIL import Image
from transformers import AutoImageProcessor, AutoModelForImageClassification, pipeline

model_dir, images = sys.argv[1], sys.argv[2:]
pil = [Image.open(p).convert("RGB") for p in images]
top3 = lambda probs, names: [[names[i], float(probs[i])] for i in probs.topk(3).indices.tolist()]

pipe = pipeline("image-classification", model=model_dir, device="cpu")
out = {"pipeline": [[[r["label"], r["score"]] for r in pipe(img, top_k=3)] for img in pil]}

processor = AutoImageProcessor.from_pretrained(model_dir)
auto = AutoModelForImageClassification.from_pretrained(model_dir).eval()
with torch.no_grad():
    probs = auto(**processor(pil, return_tensors="pt")).logits.softmax(-1)
out["auto"] = [top3(p, auto.config.id2label) for p in probs]

model = timm.create_model(f"local-dir:{model_dir}", pretrained=True).eval()
transform = timm.data.create_transform(**timm.data.resolve_model_data_config(model))
with torch.no_grad():
    probs = model(torch.stack([transform(img) for img in pil])).softmax(-1)
out["timm"] = [top3(p, dict(enumerate(model.pretrained_cfg["label_names"]))) for p in probs]
print(json.dumps(out))
'''


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A freshly saved folder: the format under test, whatever the release models hold."""
    model = create_backbone("efficientnet_lite0", num_classes=len(CLASS_IDS))
    return save_model_folder(model, tmp_path_factory.mktemp("model"), list(CLASS_IDS),
                             ReleaseMetadata(backbone="efficientnet_lite0"))


def test_folder_holds_timm_and_transformers_fields(model_dir):
    config = read_config(model_dir)
    assert config["architecture"] == "tf_efficientnet_lite0"
    assert config["num_classes"] == 15 and config["label_names"] == [display_name(c) for c in CLASS_IDS]
    assert class_ids(config) == list(CLASS_IDS)  # what cropdx maps the outputs by
    assert config["id2label"]["3"] == "Potato: Late blight" and config["label2id"]["Potato: Late blight"] == 3
    assert "num_classes" not in config.get("model_args", {})  # would break TimmWrapper loading
    assert config["pretrained_cfg"]["mean"] == [0.5, 0.5, 0.5]
    assert config["cropdx"] == {"backbone": "efficientnet_lite0", "temperature": 1.0, "threshold": 0.7}
    preprocessor = json.loads((model_dir / "preprocessor_config.json").read_text())
    assert preprocessor["image_processor_type"] == "TimmWrapperImageProcessor"
    assert preprocessor["pretrained_cfg"] == config["pretrained_cfg"]


@pytest.mark.slow
def test_loads_without_cropdx_with_the_same_top3(model_dir, tmp_path):
    images = sorted(str(p) for p in LEAVES.glob("*/*"))[::9]
    result = subprocess.run([sys.executable, "-c", CLEAN_LOADERS, str(model_dir), *images],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    predictor = Predictor.from_folder(model_dir)
    for i, image in enumerate(images):
        ours = [(p.class_name, p.probability) for p in predictor.predict(image)]
        for loader in ("pipeline", "auto", "timm"):
            theirs = loaded[loader][i]
            assert [name for name, _ in theirs] == [display_name(n) for n, _ in ours], (loader, image)
            assert all(abs(a - b) < 1e-4 for (_, a), (_, b) in zip(theirs, ours, strict=True)), loader


def test_reload_gives_the_same_logits(model_dir, leaf_image):
    a = Predictor.from_folder(model_dir).probabilities([leaf_image])
    b = Predictor.from_folder(model_dir).probabilities([leaf_image])
    assert (a - b).abs().max() < 1e-6


@pytest.mark.parametrize(("breakage", "message"), [
    ("missing_dir", "no such model folder"),
    ("no_weights", "missing model.safetensors"),
    ("bad_json", "invalid JSON"),
    ("not_timm", "missing architecture"),
    ("wrong_weights", "weights do not load"),
])
def test_broken_folders_give_one_clear_error(model_dir, tmp_path, breakage, message):
    folder = tmp_path / "model"
    if breakage != "missing_dir":
        folder.mkdir()
        (folder / "config.json").write_text((model_dir / "config.json").read_text())
        (folder / "model.safetensors").write_bytes((model_dir / "model.safetensors").read_bytes())
    if breakage == "no_weights":
        (folder / "model.safetensors").unlink()
    elif breakage == "bad_json":
        (folder / "config.json").write_text("{not json")
    elif breakage == "not_timm":
        (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    elif breakage == "wrong_weights":
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, "architecture": "mobilenetv2_100"}))
    with pytest.raises(ModelFolderError, match=message):
        load_model_folder(folder)


def test_a_folder_of_an_older_cropdx_still_loads_and_keeps_its_metadata(model_dir, tmp_path, caplog):
    """The lab-only releases' layout: a flat calibration record, the retired Mahalanobis leaf detector."""
    import logging
    import shutil

    old = shutil.copytree(model_dir, tmp_path / "old")
    config = read_config(old)
    config["cropdx"] = {"backbone": "efficientnet_lite0", "temperature": 0.39, "threshold": 0.81,
                        "threshold_reason": "0.81 is the lowest threshold with >= 99.5% accuracy",
                        "calibration": {"split": "validation", "n": 1823, "ece_before": 0.13, "ece_after": 0.01},
                        "leaf_detector": {"method": "Mahalanobis distance", "threshold": 412.5}}
    (old / "config.json").write_text(json.dumps(config))
    (old / "leaf_detector.safetensors").write_bytes(b"the retired detector")
    metadata = ReleaseMetadata.read(old)
    assert (metadata.temperature, metadata.threshold, metadata.leaf_gate) == (0.39, 0.81, None)
    assert metadata.retired == {"leaf_detector": {"method": "Mahalanobis distance", "threshold": 412.5}}
    with caplog.at_level(logging.WARNING):
        predictor = Predictor.from_folder(old)
    assert predictor.gate is None and "retired" in caplog.text
    assert (predictor.temperature, predictor.threshold) == (0.39, 0.81)
    metadata.write(old)
    assert read_config(old)["cropdx"] == config["cropdx"]  # written back as it was read
