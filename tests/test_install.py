"""The package works where it is installed, away from this checkout: `pip install .` (not editable), used from
another folder, predicts with `--model DIR` and serves the Space with `--model DIR`."""

import json
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from cropdx_hf.release.registry import DEFAULT_RELEASE
from tests.conftest import LEAVES, RELEASES, ROOT

pytestmark = [pytest.mark.slow, pytest.mark.skipif(DEFAULT_RELEASE not in RELEASES.names(),
                                                   reason="the default release is not committed")]
LEAF = sorted(LEAVES.glob("Tomato_Early_blight/*"))[0]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A wheel of the checkout installed into a folder of its own, and an environment that imports it from there
    (the editable install's finder comes after the path, so the installed copy wins)."""
    root = tmp_path_factory.mktemp("install")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(root / "wheel"), str(ROOT)], check=True, capture_output=True)
    wheel = next((root / "wheel").glob("cropdx_hf-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(root / "site"),
                    str(wheel)], check=True, capture_output=True)
    env = {k: v for k, v in os.environ.items() if k not in ("CROPDX_MODELS", "CROPDX_EXPORTS")}
    env.update(PYTHONPATH=str(root / "site"), HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    return root / "site", env, elsewhere


def test_the_installed_package_is_the_one_imported(installed):
    site, env, elsewhere = installed
    result = subprocess.run([sys.executable, "-c", "import cropdx_hf; print(cropdx_hf.__file__)"], env=env,
                            cwd=elsewhere, capture_output=True, text=True, check=True)
    assert result.stdout.strip().startswith(str(site))


def test_installed_cli_predicts_with_a_model_folder(installed):
    _, env, elsewhere = installed
    result = subprocess.run([sys.executable, "-m", "cropdx_hf.cli", "predict", "--model",
                             str(RELEASES.path(DEFAULT_RELEASE)), "--json", str(LEAF)], env=env, cwd=elsewhere,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    answer = json.loads(result.stdout)[str(LEAF)]
    assert answer["predictions"][0]["class_name"] == "Tomato_Early_blight" and answer["quality"]["passed"]


def test_installed_package_serves_the_space_with_a_model_folder(installed):
    _, env, elsewhere = installed
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, str(ROOT / "space" / "app.py"), "--port", str(port), "--model",
                               str(RELEASES.path(DEFAULT_RELEASE)), "--models-dir", str(elsewhere / "none"),
                               "--exports-dir", str(elsewhere / "none")], env=env, cwd=elsewhere,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):
            assert server.poll() is None, server.stderr.read()[-2000:]
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).json()
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert health["default"] == DEFAULT_RELEASE
        body = httpx.post(f"http://127.0.0.1:{port}/predict", files={"file": ("leaf.jpg", LEAF.read_bytes())},
                          timeout=120).json()
        assert body["status"] == "diagnosed" and body["predictions"][0]["class_name"] == "Tomato_Early_blight"
    finally:
        server.terminate()
        server.wait(timeout=30)
