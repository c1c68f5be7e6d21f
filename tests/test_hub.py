"""Publish to a local Hub double and consume from it: push, re-push, tag, download, four loaders, a Space.

huggingface_hub reads HF_ENDPOINT once, at import, and this test process has long imported it for offline
use; so every Hub client here runs in a subprocess with its own environment.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cropdx_hf.inference.predictor import Predictor
from cropdx_hf.labels import display_name
from cropdx_hf.release.hub import SKIP_DIRS
from cropdx_hf.release.registry import DEFAULT_RELEASE
from tests.clean_env import block_imports
from tests.conftest import LEAVES, RELEASES, ROOT
from tests.hub_double import HubDouble

pytestmark = [pytest.mark.slow, pytest.mark.skipif(DEFAULT_RELEASE not in RELEASES.names(),
                                                   reason="the default release is not committed")]
TOKEN = "hf_cropdx_test_token"
REPO = "cropdx-test/leaf-model"
BIN = Path(sys.executable).parent
IMAGES = [str(sorted(LEAVES.glob(f"{c}/*"))[0])
          for c in ("Tomato_Early_blight", "Potato___Late_blight", "Tomato_healthy")]

CONSUMERS = block_imports("cropdx_hf") + r'''
import json
import timm, torch
from PIL import Image
from optimum.onnxruntime import ORTModelForImageClassification
from transformers import AutoImageProcessor, AutoModelForImageClassification, pipeline

repo, images = sys.argv[1], [Image.open(p).convert("RGB") for p in sys.argv[2:]]
out = {"pipeline": [[r["label"] for r in pipeline("image-classification", model=repo)(im, top_k=3)] for im in images]}
auto = AutoModelForImageClassification.from_pretrained(repo, revision="v1.0.0").eval()
processor = AutoImageProcessor.from_pretrained(repo, revision="v1.0.0")
with torch.no_grad():
    logits = auto(**processor(images, return_tensors="pt")).logits
out["auto"] = [[auto.config.id2label[i] for i in row.topk(3).indices.tolist()] for row in logits]
model = timm.create_model(f"hf-hub:{repo}", pretrained=True).eval()
transform = timm.data.create_transform(**timm.data.resolve_model_data_config(model))
with torch.no_grad():
    logits = model(torch.stack([transform(im) for im in images]))
out["timm"] = [[model.pretrained_cfg["label_names"][i] for i in row.topk(3).indices.tolist()] for row in logits]
ort = ORTModelForImageClassification.from_pretrained(repo, subfolder="onnx")
with torch.no_grad():
    logits = ort(**processor(images, return_tensors="pt")).logits
out["onnx"] = [[ort.config.id2label[i] for i in torch.as_tensor(row).topk(3).indices.tolist()] for row in logits]
print(json.dumps(out))
'''


@pytest.fixture(scope="module")
def hub():
    double = HubDouble(TOKEN).start()
    yield double
    double.stop()


def _env(hub_url: str, home: Path, token: bool = True) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(CROPDX_MODELS=str(ROOT / "models"), HF_ENDPOINT=hub_url, HF_HOME=str(home), HF_HUB_DISABLE_XET="1",
               HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_ETAG_TIMEOUT="5", GRADIO_ANALYTICS_ENABLED="False")
    if token:
        env["HF_TOKEN"] = TOKEN
    return env


def _run(args: list[str], env: dict[str, str], timeout: int = 600) -> tuple[subprocess.CompletedProcess, float]:
    start = time.time()
    result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout)
    return result, time.time() - start


@pytest.fixture(scope="module")
def pushed(hub, tmp_path_factory):
    work = tmp_path_factory.mktemp("hub")
    env = _env(hub.url, work / "pusher")
    exports = work / "exports"
    result, _ = _run([str(BIN / "cropdx"), "--exports-dir", str(exports), "export", "--model", DEFAULT_RELEASE,
                      "--data", str(LEAVES), "--split", "all", "--rebuild", "--no-record"], env)
    assert result.returncode == 0, result.stderr[-3000:]
    push = [str(BIN / "cropdx"), "--exports-dir", str(exports), "push", "--model", DEFAULT_RELEASE, "--repo-id", REPO,
            "--revision", "v1.0.0"]
    result, _ = _run(push, env)
    assert result.returncode == 0, result.stderr[-3000:]
    return work, push, env


def test_push_uploads_everything_in_one_commit_and_tags_it(hub, pushed):
    repo = hub.repo(REPO)
    assert len(repo.commits) == 2  # the repo's initial commit and the push
    files = set(repo.commits[-1].files)
    release = RELEASES.path(DEFAULT_RELEASE)
    expected = {p.relative_to(release).as_posix() for p in release.rglob("*")
                if p.is_file() and not SKIP_DIRS & set(p.relative_to(release).parts)}
    assert expected <= files
    assert {"model.safetensors", "config.json", "README.md", "metrics.json", "eval/confusion_matrix.png"} <= files
    assert {"onnx/model.onnx", "onnx/config.json"} <= files
    assert repo.refs["v1.0.0"] == repo.commits[-1].id
    assert repo.commits[-1].files["model.safetensors"].lfs


def test_repushing_unchanged_files_makes_no_new_commit(hub, pushed):
    _, push, env = pushed
    result, _ = _run(push, env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(hub.repo(REPO).commits) == 2


def test_push_without_a_token_fails_fast_and_clearly(hub, pushed, tmp_path):
    _, push, _ = pushed
    result, seconds = _run(push, _env(hub.url, tmp_path / "nobody", token=False))
    assert result.returncode == 2 and seconds < 30
    assert "no Hugging Face token" in result.stderr and "Traceback" not in result.stderr


def test_a_dead_endpoint_fails_fast_and_clearly(pushed, tmp_path):
    _, push, _ = pushed
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    result, seconds = _run(push, _env(dead, tmp_path / "dead"))
    assert result.returncode == 2 and seconds < 30
    assert f"cannot reach the Hub at {dead}" in result.stderr


def test_downloads_fetch_everything(hub, pushed, tmp_path):
    env = _env(hub.url, tmp_path / "consumer", token=False)
    for cli in (["huggingface-cli", "download"], ["hf", "download"]):
        target = tmp_path / cli[0]
        result, _ = _run([str(BIN / cli[0]), *cli[1:], REPO, "--local-dir", str(target)], env)
        assert result.returncode == 0, result.stderr[-2000:]
        got = {p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file() and ".cache" not in p.parts}
        assert got == set(hub.repo(REPO).commits[-1].files)


def test_four_loaders_without_cropdx_agree_on_the_top3(hub, pushed, tmp_path):
    env = _env(hub.url, tmp_path / "loaders", token=False)
    result, _ = _run([sys.executable, "-c", CONSUMERS, REPO, *IMAGES], env)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    ours = Predictor.from_folder(RELEASES.path(DEFAULT_RELEASE))
    expected = [[p.class_name for p in ours.predict(image)] for image in IMAGES]
    for loader in ("pipeline", "auto", "timm", "onnx"):  # each shows the display names of label_names
        assert loaded[loader] == [[display_name(c) for c in row] for row in expected], loader


def test_cropdx_predict_takes_a_hub_id_and_names_missing_repos(hub, pushed, tmp_path):
    env = _env(hub.url, tmp_path / "predict", token=False)
    result, _ = _run([str(BIN / "cropdx"), "predict", "--model", REPO, "--json", IMAGES[0]], env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)[IMAGES[0]]["predictions"][0]["class_name"] == "Tomato_Early_blight"
    result, seconds = _run([str(BIN / "cropdx"), "predict", "--model", "cropdx-test/missing", IMAGES[0]], env)
    assert result.returncode == 2 and seconds < 30
    assert "cropdx-test/missing: not a local folder or release" in result.stderr


def test_push_space_uploads_the_app_with_its_library_and_models(hub, pushed):
    work, _, env = pushed
    result, _ = _run([str(BIN / "cropdx"), "--exports-dir", str(work / "exports"), "push-space", "--repo-id",
                      "cropdx-test/leaf-doctor", "--space-dir", str(ROOT / "space")], env)
    assert result.returncode == 0, result.stderr[-2000:]
    space = hub.repo("cropdx-test/leaf-doctor", "space")
    files = set(space.commits[-1].files)
    assert {"app.py", "README.md", "requirements.txt", "cropdx_hf/serving/service.py",
            f"models/{DEFAULT_RELEASE}/model.safetensors"} <= files
    assert not any("__pycache__" in f for f in files)
