"""The Space end to end: REST routes, the Gradio API through gradio_client, bad inputs, privacy, determinism."""

import json
import os
import socket
import threading
import time
from pathlib import Path

import pytest
import uvicorn

from cropdx_hf.releases import DEFAULT_MODEL, release_names
from tests.bad_inputs import unusable, usable
from tests.conftest import LEAVES, ROOT

pytestmark = pytest.mark.skipif(DEFAULT_MODEL not in release_names(), reason="the default release is not committed")
LEAF = sorted(LEAVES.glob("Tomato_Early_blight/*"))[0]  # one the release diagnoses confidently
PREDICTION_KEYS = {"class_name", "probability", "crop", "disease", "severity", "actions", "active_ingredients"}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    os.environ["GRADIO_TEMP_DIR"] = str(tmp_path_factory.mktemp("gradio-cache"))
    from cropdx_hf.serving import create_app

    return create_app(DEFAULT_MODEL, models=[DEFAULT_MODEL])


@pytest.fixture(scope="module")
def client(app):
    from fastapi.testclient import TestClient

    return TestClient(app)


@pytest.fixture(scope="module")
def server(app):
    """The app on a free 127.0.0.1 port, for gradio_client and the browser."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(100):
        if srv.started:
            break
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/"
    srv.should_exit = True
    thread.join(timeout=10)


def _post(client, data: bytes, name="leaf.jpg"):
    return client.post("/predict", files={"file": (name, data, "image/jpeg")})


def test_health_and_version(client):
    assert client.get("/health").json() == {"status": "ok", "models": [DEFAULT_MODEL], "default": DEFAULT_MODEL}
    version = client.get("/model/version").json()
    assert version["model"] == DEFAULT_MODEL and len(version["classes"]) == 15
    assert 0 < version["threshold"] < 1 and version["test_metrics"]["n"] > 1000


def test_rest_predict_diagnoses_a_leaf_with_treatment(client):
    body = _post(client, LEAF.read_bytes()).json()
    assert body["status"] == "diagnosed" and body["confident"] is True and body["model"] == DEFAULT_MODEL
    assert len(body["predictions"]) == 3 and all(set(p) == PREDICTION_KEYS for p in body["predictions"])
    assert body["predictions"][0]["class_name"] == "Tomato_Early_blight"
    assert body["treatment"]["sources"] and "label" in body["treatment"]["disclaimer"]


def test_same_image_same_answer(client):
    first, second = (_post(client, LEAF.read_bytes()).json() for _ in range(2))
    assert first == second


def test_non_leaf_photos_are_rejected(client):
    import io

    from PIL import Image
    from skimage import data as skdata

    buf = io.BytesIO()
    Image.fromarray(skdata.chelsea()).save(buf, "JPEG")
    body = _post(client, buf.getvalue(), "cat.jpg").json()
    assert body["status"] == "not_a_leaf" and body["predictions"] == [] and body["treatment"] is None
    assert "does not look like a tomato, potato or bell-pepper leaf" in body["message"]


@pytest.mark.parametrize("name", sorted(unusable()))
def test_bad_inputs_get_a_clear_400(client, name):
    response = _post(client, unusable()[name], name)
    assert response.status_code == 400 and name in response.json()["error"]


@pytest.mark.parametrize("name", sorted(usable()))
def test_awkward_but_valid_images_get_an_answer(client, name):
    response = _post(client, usable()[name], name)
    assert response.status_code == 200 and response.json()["status"] in {"diagnosed", "retake", "not_a_leaf"}


def test_oversized_uploads_are_refused(client):
    response = _post(client, b"\xff" * (21 * 2**20), "huge.jpg")
    assert response.status_code == 413 and "limit" in response.json()["error"]


def test_metrics_count_what_happened(client):
    _post(client, LEAF.read_bytes())
    _post(client, b"not an image", "x.jpg")
    text = client.get("/metrics").text
    assert 'cropdx_request_latency_seconds_bucket{le="0.5",route="rest"}' in text
    assert f'cropdx_predictions_total{{class_name="Tomato_Early_blight",model="{DEFAULT_MODEL}"}}' in text
    assert 'cropdx_outcomes_total{status="error"}' in text and 'cropdx_outcomes_total{status="not_a_leaf"}' in text


def test_gradio_api_and_ui_through_gradio_client(server):
    from gradio_client import Client, handle_file

    client = Client(server, verbose=False)
    body = client.predict(handle_file(str(LEAF)), DEFAULT_MODEL, api_name="/predict")
    assert body["status"] == "diagnosed" and len(body["predictions"]) == 3
    labels, card, cam = client.predict(handle_file(str(LEAF)), DEFAULT_MODEL, api_name="/diagnose_ui")
    assert len(labels["confidences"]) == 3 and labels["label"] == "Tomato: Early blight"
    assert "## Tomato: Early blight" in card and "Active ingredients" in card and "Sources" in card
    assert cam.startswith("<figure><img src=\"data:image/jpeg;base64,")
    bad = client.predict(handle_file(str(Path(__file__))), DEFAULT_MODEL, api_name="/predict")
    assert "not a readable image" in bad["error"]


def test_uploaded_photos_are_not_kept(server):
    from gradio_client import Client, handle_file

    Client(server, verbose=False).predict(handle_file(str(LEAF)), DEFAULT_MODEL, api_name="/predict")
    cache = Path(os.environ["GRADIO_TEMP_DIR"])
    examples = {p.name for p in (ROOT / "space" / "examples").iterdir()}  # Gradio caches the bundled examples
    # Gradio's upload route leaves empty placeholder files; no byte of a photo may remain
    kept = [p for p in cache.rglob("*") if p.is_file() and p.stat().st_size > 0 and p.name not in examples]
    assert kept == []


def test_space_readme_front_matter():
    import yaml

    front = yaml.safe_load((ROOT / "space" / "README.md").read_text().split("---")[1])
    for key in ("title", "emoji", "colorFrom", "colorTo", "sdk", "sdk_version", "app_file", "license",
                "short_description", "models"):
        assert key in front, key
    assert front["sdk"] == "gradio" and front["app_file"] == "app.py" and front["sdk_version"].startswith("5.50")
    assert len(front["short_description"]) <= 60
    assert json.dumps(front)


CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed (.ci/run installs it)")
def test_a_browser_uploads_a_photo_and_reads_the_diagnosis(server, tmp_path):
    from playwright.sync_api import sync_playwright

    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run"]
    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=str(CHROMIUM),
                                                       args=flags, headless=True)
        page = browser.new_page()
        page.goto(server, wait_until="networkidle")
        page.set_input_files("input[type=file]", str(LEAF))
        page.get_by_role("button", name="Diagnose").click()
        card = page.locator("#treatment-card")
        card.get_by_text("Tomato: Early blight").wait_for(timeout=60_000)
        assert "Active ingredients" in card.inner_text()
        page.screenshot(path=str(tmp_path / "space.png"), full_page=True)
        browser.close()
    assert (tmp_path / "space.png").stat().st_size > 20_000
