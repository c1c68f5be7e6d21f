"""The service, the REST API and the page rendering, on a freshly saved model served by PyTorch (no export)."""

import logging

import numpy as np
import pytest
from fastapi.testclient import TestClient

from cropdx_hf.errors import UnknownModelError
from cropdx_hf.inference.diagnosis import decide
from cropdx_hf.inference.quality import assess
from cropdx_hf.labels import CLASS_IDS
from cropdx_hf.modeling.backbones import create_backbone
from cropdx_hf.modeling.folder import save_model_folder
from cropdx_hf.photos import load_image
from cropdx_hf.serving.api import build_api
from cropdx_hf.serving.render import headline, render_card, top3_labels, top3_title
from cropdx_hf.serving.service import Service
from tests.conftest import LEAVES

LEAF = sorted(LEAVES.glob("Tomato_Early_blight/*"))[0]


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    model_dir = save_model_folder(create_backbone("mobilenetv2_100", num_classes=len(CLASS_IDS)),
                                  tmp_path_factory.mktemp("m") / "tiny", list(CLASS_IDS))
    return Service({"tiny": model_dir}, "tiny", exports_dir=None, backend="auto")


def test_a_model_without_an_export_is_served_by_pytorch_and_said_so(tmp_path_factory, caplog):
    model_dir = save_model_folder(create_backbone("mobilenetv2_100", num_classes=len(CLASS_IDS)),
                                  tmp_path_factory.mktemp("m") / "plain", list(CLASS_IDS))
    with caplog.at_level(logging.WARNING):
        service = Service({"plain": model_dir}, "plain", exports_dir=tmp_path_factory.mktemp("exports"))
    assert service.backends["plain"] == "pytorch" and "no ONNX export" in caplog.text
    with pytest.raises(UnknownModelError, match="available: plain"):
        service.check("other")


def test_the_rest_api_answers_and_refuses_unknown_models(service):
    client = TestClient(build_api(service))
    assert client.get("/health").json() == {"status": "ok", "models": ["tiny"], "default": "tiny"}
    assert client.get("/model/version").json()["backend"] == "pytorch"
    body = client.post("/predict", files={"file": ("leaf.jpg", LEAF.read_bytes())}).json()
    assert body["status"] in {"diagnosed", "retake"} and len(body["predictions"]) == 3
    unknown = client.post("/predict?model=nope", files={"file": ("leaf.jpg", LEAF.read_bytes())})
    assert unknown.status_code == 404 and unknown.json()["available"] == ["tiny"]
    assert client.post("/predict", files={"file": ("x.jpg", b"not a photo")}).status_code == 400
    assert 'cropdx_outcomes_total{status="error"}' in client.get("/metrics").text


def test_cards_render_each_status():
    probs = np.eye(len(CLASS_IDS))[6] * 0.95 + 0.05 / len(CLASS_IDS)
    leaf = load_image(LEAF)
    diagnosed = decide("m", CLASS_IDS, probs, 0.7, True, quality=assess(leaf))
    assert top3_labels(diagnosed)["Tomato: Early blight"] == pytest.approx(0.95 + 0.05 / 15, abs=1e-6)
    card = render_card(diagnosed)
    assert card.startswith("## Tomato: Early blight") and "Sources" in card
    assert headline(diagnosed) == f"## Tomato: Early blight ({0.95 + 0.05 / 15:.0%})"
    assert top3_title(diagnosed) == "Top-3 diagnoses"
    grey = decide("m", CLASS_IDS, probs, 0.7, True, quality=assess(leaf.convert("L").convert("RGB")))
    assert "Photo checks that failed:** colour (colourfulness 0.0)" in render_card(grey)
    # a retake names no disease in its headline, and its top-3 are only possible diagnoses
    assert headline(grey).startswith("## Retake the photo") and "blight" not in headline(grey).lower()
    assert top3_title(grey).startswith("Possible diagnoses")
    unsure = decide("m", CLASS_IDS, probs, 0.99, True, quality=assess(leaf))
    assert unsure.status == "retake" and "blight" not in headline(unsure).lower()
    not_a_leaf = decide("m", CLASS_IDS, probs, 0.7, False)
    assert headline(not_a_leaf).startswith("## Not a leaf") and render_card(not_a_leaf).startswith("**How to take")


def test_grad_cam_draws_over_the_photo_as_the_model_saw_it(service):
    from cropdx_hf.inference.explain import gradcam_overlay

    predictor = service.predictors["tiny"]
    overlay = gradcam_overlay(predictor, load_image(LEAF), 6)
    assert overlay.size == (224, 224) and overlay.mode == "RGB"
