"""A short run of scripts/soak_space.py: the ONNX Space under concurrent load with bad inputs mixed in."""

import runpy

import pytest

from cropdx_hf.release.registry import DEFAULT_RELEASE
from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def test_a_short_soak_answers_every_bad_input_with_a_4xx_and_never_fails(default_exports, tmp_path):
    soak = runpy.run_path(str(ROOT / "scripts" / "soak_space.py"))["soak"]
    models = tmp_path / "models"  # the default release: the only one default_exports holds
    models.mkdir()
    (models / DEFAULT_RELEASE).symlink_to(ROOT / "models" / DEFAULT_RELEASE)
    result = soak(60, 4, 10, warmup=5, server_args=["--exports-dir", str(default_exports), "--models-dir", str(models)])
    assert result["requests"] == 60 and result["bad_inputs"] == 6 and result["server_errors"] == 0
    assert result["bad_inputs_answered_4xx_with_a_message"] == 6
    assert result["good_photos_answered_200"] == 54
