import json
import subprocess
import sys

import pytest
from PIL import Image
from skimage import data as skdata

from cropdx_hf.cli import main


def test_predict_with_an_imagenet_backbone_proves_the_install(tmp_path, capsys):
    path = tmp_path / "chelsea.png"
    Image.fromarray(skdata.chelsea()).save(path)
    assert main(["predict", str(path), "--backbone", "efficientnet_lite0", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)[str(path)]
    assert len(result) == 3 and "cat" in result[0]["class_name"].lower()


def test_predict_reports_bad_files_and_goes_on(tmp_path, leaf_image, capsys):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    code = main(["predict", str(bad), str(leaf_image), "--backbone", "mobilenetv2_100"])
    out = capsys.readouterr().out
    assert code == 1
    assert f"{bad}\n  error: {bad}: not a readable image" in out
    assert f"{leaf_image}\n  1. " in out


@pytest.mark.parametrize(("argv", "message"), [
    (["predict", "x.jpg", "--model", "/no/such/model"], "/no/such/model: neither a model folder nor a release"),
    (["eda", "--data", "/no/such/data", "--out", "out"], "/no/such/data: not a folder"),
    (["predict", "x.jpg", "--backbone", "resnet50"], "could not download ImageNet weights"),
])
def test_user_errors_are_one_line_not_a_traceback(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_eda_report_is_computed_from_the_data(tmp_path, leaves_dir):
    out = tmp_path / "eda"
    assert main(["eda", "--data", str(leaves_dir), "--out", str(out)]) == 0
    stats = json.loads((out / "stats.json").read_text())
    assert stats["n_images"] == 45 and stats["n_classes"] == 15
    assert stats["counts"]["Potato___healthy"] == 3 and stats["counts"]["Tomato__Tomato_mosaic_virus"] == 3
    assert stats["imbalance_ratio"] == 1.0  # the fixtures hold 3 photos of every class
    assert stats["image_sizes"] == {"160x160": 45}
    report = (out / "report.md").read_text()
    assert "ratio 1.0:1" in report and "Cross-crop look-alikes" in report and "Uniform lab background" in report
    for image in ("class_distribution.png", "samples.png"):
        assert (out / image).stat().st_size > 10_000


def test_console_script_is_installed():
    result = subprocess.run([sys.executable, "-m", "cropdx_hf.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "predict" in result.stdout and "eda" in result.stdout
