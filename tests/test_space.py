"""The Space end to end: REST routes, the Gradio API through gradio_client, bad inputs, privacy, determinism."""

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import uvicorn
from bad_inputs import unusable, usable

from cropdx_hf.modeling.config import read_config
from cropdx_hf.release.registry import DEFAULT_RELEASE
from tests.clean_env import block_imports
from tests.conftest import LEAVES, RELEASES, ROOT, load_space_app

pytestmark = [pytest.mark.slow, pytest.mark.skipif(DEFAULT_RELEASE not in RELEASES.names(),
                                                   reason="the default release is not committed")]
LEAF = sorted(LEAVES.glob("Tomato_Early_blight/*"))[0]  # one the release diagnoses confidently
PREDICTION_KEYS = {"class_name", "display_name", "probability", "crop", "disease", "severity", "actions",
                   "active_ingredients"}
EXAMPLE = ROOT / "space" / "examples" / "tomato_early_blight.jpg"


@pytest.fixture(scope="module")
def app(tmp_path_factory, default_exports):
    os.environ["GRADIO_TEMP_DIR"] = str(tmp_path_factory.mktemp("gradio-cache"))
    return load_space_app().create_app(DEFAULT_RELEASE, models=[DEFAULT_RELEASE], models_dir=ROOT / "models",
                                        exports_dir=default_exports)


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
    assert client.get("/health").json() == {"status": "ok", "models": [DEFAULT_RELEASE], "default": DEFAULT_RELEASE}
    version = client.get("/model/version").json()
    assert version["model"] == DEFAULT_RELEASE and len(version["classes"]) == 15
    assert 0 < version["threshold"] < 1 and version["test_metrics"]["n"] > 1000
    assert version["backend"].startswith("onnxruntime") and "ONNX leaf gate" in version["backend"]


def test_an_unknown_model_is_a_404_that_lists_the_models(client):
    response = client.post("/predict?model=nope", files={"file": ("leaf.jpg", LEAF.read_bytes(), "image/jpeg")})
    assert response.status_code == 404 and response.json()["available"] == [DEFAULT_RELEASE]
    assert "unknown model 'nope'" in response.json()["error"]
    response = client.get("/model/version?model=nope")
    assert response.status_code == 404 and DEFAULT_RELEASE in response.json()["error"]


def test_a_grey_photo_is_to_be_retaken_in_colour(client):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.open(EXAMPLE).convert("L").save(buf, "PNG")
    body = _post(client, buf.getvalue(), "grey.png").json()
    assert body["status"] == "retake" and body["confident"] is False and len(body["predictions"]) == 3
    assert body["tips"][0].startswith("Take a colour photo")
    checks = {c["name"]: c for c in body["quality"]["checks"]}
    assert checks["colour"]["passed"] is False and checks["colour"]["measured"]["colourfulness"] < 1


def test_rest_predict_diagnoses_a_leaf_with_treatment(client):
    body = _post(client, LEAF.read_bytes()).json()
    assert body["status"] == "diagnosed" and body["confident"] is True and body["model"] == DEFAULT_RELEASE
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
    assert f'cropdx_predictions_total{{class_name="Tomato_Early_blight",model="{DEFAULT_RELEASE}"}}' in text
    assert 'cropdx_outcomes_total{status="error"}' in text and 'cropdx_outcomes_total{status="not_a_leaf"}' in text


def test_gradio_api_and_ui_through_gradio_client(server):
    from gradio_client import Client, handle_file

    client = Client(server, verbose=False)
    body = client.predict(handle_file(str(LEAF)), api_name="/predict")  # the model is optional
    assert body["status"] == "diagnosed" and len(body["predictions"]) == 3 and body["model"] == DEFAULT_RELEASE
    verdict, labels, card = client.predict(handle_file(str(LEAF)), DEFAULT_RELEASE, api_name="/diagnose_ui")
    assert verdict.startswith("## Tomato: Early blight (")
    assert labels["label"] == "Top-3 diagnoses"  # the component's title: "Possible diagnoses" on a retake
    assert len(labels["value"]["confidences"]) == 3 and labels["value"]["label"] == "Tomato: Early blight"
    assert "## Tomato: Early blight" in card and "Active ingredients" in card and "Sources" in card
    bad = client.predict(handle_file(str(Path(__file__))), DEFAULT_RELEASE, api_name="/predict")
    assert "not a readable image" in bad["error"]
    unknown = client.predict(handle_file(str(LEAF)), "no_such_model", api_name="/predict")
    assert "unknown model 'no_such_model'" in unknown["error"] and unknown["available"] == [DEFAULT_RELEASE]


def test_the_api_names_its_parameters_and_output(server):
    from gradio_client import Client

    api = Client(server, verbose=False).view_api(return_format="dict", print_info=False)
    predict = api["named_endpoints"]["/predict"]
    assert [p["parameter_name"] for p in predict["parameters"]] == ["photo", "model"]
    model = predict["parameters"][1]
    assert model["parameter_has_default"] and model["parameter_default"] == DEFAULT_RELEASE
    assert [r["label"] for r in predict["returns"]] == ["diagnosis"]
    assert [r["label"] for r in api["named_endpoints"]["/diagnose_ui"]["returns"]] == ["Verdict", "Top-3 diagnoses",
                                                                                      "Treatment card"]


def test_grad_cam_is_drawn_on_demand(app):
    service = app.state.service
    assert "torch" not in service.backends[DEFAULT_RELEASE]
    overlay = service.explain(LEAF.read_bytes(), DEFAULT_RELEASE, "Tomato_Early_blight")
    size = read_config(RELEASES.path(DEFAULT_RELEASE))["pretrained_cfg"]["input_size"]
    assert overlay.size == tuple(size[1:]), "drawn at the size the model sees the photo"


def test_a_non_image_in_the_page_gets_one_sentence_and_no_traceback(server, capfd):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as error:
        Client(server, verbose=False).predict(handle_file(str(Path(__file__))), DEFAULT_RELEASE,
                                              api_name="/diagnose_ui")
    message = str(error.value)
    assert "the photo: not a readable image" in message and "/tmp" not in message and "gradio" not in message.lower()
    assert "Traceback" not in capfd.readouterr().err


def test_an_upload_identical_to_an_example_leaves_the_example_in_place(server):
    """Gradio caches the bundled examples; an upload with the same bytes lands at the same path and must not be
    deleted with the other uploads (every visitor would get 403 for the example from then on)."""
    from gradio_client import Client, handle_file

    Client(server, verbose=False).predict(handle_file(str(EXAMPLE)), api_name="/predict")
    cache = Path(os.environ["GRADIO_TEMP_DIR"])
    assert [p for p in cache.rglob(EXAMPLE.name) if p.stat().st_size == EXAMPLE.stat().st_size]


def test_uploaded_photos_are_not_kept(server):
    from gradio_client import Client, handle_file

    Client(server, verbose=False).predict(handle_file(str(LEAF)), DEFAULT_RELEASE, api_name="/predict")
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
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]


@contextlib.contextmanager
def space_page(server: str, profile: Path, **context):
    """The Space's page in headless Debian chromium, its upload input attached (`context`: e.g. a viewport)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(str(profile), executable_path=str(CHROMIUM),
                                                       args=CHROMIUM_FLAGS, headless=True, **context)
        page = browser.new_page()
        # not "networkidle": offline, the theme's web-font requests keep the network busy until they time out
        page.goto(server, wait_until="domcontentloaded")
        page.wait_for_selector("input[type=file]", state="attached", timeout=60_000)
        try:
            yield page
        finally:
            browser.close()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed (.ci/run installs it)")
def test_a_browser_uploads_a_photo_and_reads_the_diagnosis(server, tmp_path):
    with space_page(server, tmp_path / "profile") as page:
        page.set_input_files("input[type=file]", str(LEAF))
        page.get_by_role("button", name="Diagnose").click()
        card = page.locator("#treatment-card")
        card.get_by_text("Tomato: Early blight").wait_for(timeout=60_000)
        assert "Active ingredients" in card.inner_text()
        page.get_by_role("button", name="Show where the model looked (Grad-CAM)").click()
        page.locator("figure img").wait_for(timeout=60_000)
        page.screenshot(path=str(tmp_path / "space.png"), full_page=True)
        # a visitor uploads a photo byte-identical to an example; the examples must still load for the next one
        copy = tmp_path / "my_photo.jpg"
        copy.write_bytes(EXAMPLE.read_bytes())
        page.set_input_files("input[type=file]", str(copy))
        page.get_by_role("button", name="Diagnose").click()
        card.get_by_text("Tomato").first.wait_for(timeout=60_000)
        page.reload(wait_until="domcontentloaded")
        thumbnails = page.locator("img[src*='tomato_early_blight']")
        thumbnails.first.wait_for(timeout=30_000)
        # a refused image (403) also ends up complete, with no pixels: wait for the requests, then read the pixels
        page.wait_for_function("() => [...document.querySelectorAll('img')].filter(i => i.src.includes("
                               "'tomato_early_blight')).every(i => i.complete)", timeout=30_000)
        loaded = page.evaluate("() => [...document.querySelectorAll('img')].filter(i => i.src.includes("
                               "'tomato_early_blight')).map(i => i.complete && i.naturalWidth > 0)")
    assert (tmp_path / "space.png").stat().st_size > 20_000
    assert loaded and all(loaded)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed (.ci/run installs it)")
def test_on_a_phone_a_retake_headline_says_what_to_do_and_names_no_disease(server, tmp_path):
    """A grey copy of a leaf (the model still names a class with confidence): on a 390-px phone screen the first
    words are "Retake the photo", no class is named in that headline, and the top-3 are shown below it as possible
    diagnoses."""
    from PIL import Image

    from cropdx_hf.labels import CLASSES

    grey = tmp_path / "grey_leaf.jpg"
    Image.open(LEAF).convert("L").convert("RGB").save(grey)
    with space_page(server, tmp_path / "profile", viewport={"width": 390, "height": 844}) as page:
        page.set_input_files("input[type=file]", str(grey))
        page.get_by_role("button", name="Diagnose").click()
        verdict = page.locator("#verdict")
        verdict.get_by_text("Retake the photo").wait_for(timeout=60_000)
        headline, verdict_text = verdict.locator("h2").inner_text(), verdict.inner_text()
        top3 = page.locator("#top3")
        top3_text = top3.inner_text()
        above = verdict.bounding_box()["y"] < top3.bounding_box()["y"]
        page.screenshot(path=str(tmp_path / "retake.png"), full_page=True)
    assert headline == "Retake the photo" and above
    assert not any(c.display_name in verdict_text for c in CLASSES), verdict_text
    assert top3_text.startswith("Possible diagnoses") and sum(c.display_name in top3_text for c in CLASSES) == 3


def test_the_onnx_space_answers_without_torch(default_exports):
    """The serving path imports no torch (nor timm, transformers, datasets, sklearn): only Grad-CAM would. Nor
    Ray: the Space is the one-process default, Ray the optional scale extra."""
    code = block_imports("torch", "torchvision", "timm", "transformers", "datasets", "sklearn", "captum", "ray") + f"""
import importlib.util
from fastapi.testclient import TestClient
spec = importlib.util.spec_from_file_location("space_app", {str(ROOT / "space" / "app.py")!r})
app = importlib.util.module_from_spec(spec)
spec.loader.exec_module(app)
from pathlib import Path
client = TestClient(app.create_app({DEFAULT_RELEASE!r}, models=[], models_dir=Path({str(ROOT / "models")!r}),
                                   exports_dir=Path({str(default_exports)!r})))
body = client.post("/predict", files={{"file": ("leaf.jpg", open({str(LEAF)!r}, "rb").read())}}).json()
print(body["status"], body["predictions"][0]["class_name"])
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-2:] == ["diagnosed", "Tomato_Early_blight"]
