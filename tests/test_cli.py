import json
import subprocess
import sys

import pytest
from PIL import Image
from skimage import data as skdata

from cropdx_hf.cli import main
from cropdx_hf.release.registry import DEFAULT_RELEASE
from tests.clean_env import block_imports
from tests.conftest import LEAVES, RELEASES

BLOCK_TORCH = block_imports("torch", "torchvision", "timm", "transformers")


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
    (["predict", "LEAF", "--model", "/no/such/model"], "/no/such/model: neither a model folder nor a release"),
    (["predict", "/no/such/photo.jpg"], "/no/such/photo.jpg: no such file or folder"),
    (["eda", "--data", "/no/such/data", "--out", "out"], "/no/such/data: not a folder"),
    (["predict", "LEAF", "--backbone", "resnet50"], "could not download ImageNet weights"),
])
def test_user_errors_are_one_line_not_a_traceback(argv, message, leaf_image, capsys):
    assert main([str(leaf_image) if a == "LEAF" else a for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(("argv", "message"), [
    (["predict", "/no/such/photo.jpg"], "no such file or folder"),
    (["predict", "--model", "no_such_model", "LEAF"], "no_such_model: neither a model folder nor a release"),
])
def test_predict_refuses_bad_paths_and_names_without_importing_torch(argv, message, leaf_image):
    argv = [str(leaf_image) if a == "LEAF" else a for a in argv]
    code = BLOCK_TORCH + f"from cropdx_hf.cli import main\nsys.exit(main({argv!r}))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and message in result.stderr and "blocked" not in result.stderr


@pytest.mark.skipif(DEFAULT_RELEASE not in RELEASES.names(), reason="the default release is not committed")
def test_predict_takes_a_folder_and_prints_display_names(tmp_path, capsys):
    folder = tmp_path / "photos"
    (folder / "more").mkdir(parents=True)
    photos = sorted(LEAVES.glob("Tomato_Early_blight/*"))[:2]
    (folder / "a.jpg").write_bytes(photos[0].read_bytes())
    (folder / "more" / "b.jpg").write_bytes(photos[1].read_bytes())
    assert main(["predict", str(folder)]) == 0
    out = capsys.readouterr().out
    assert f"{folder / 'a.jpg'}: " in out and f"{folder / 'more' / 'b.jpg'}: " in out
    assert "1. Tomato: Early blight" in out and "Tomato_Early_blight" not in out


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


def test_train_config_gives_defaults_that_flags_override(tmp_path):
    from cropdx_hf.cli import build_parser
    from cropdx_hf.commands.train import with_config

    config = tmp_path / "release.yaml"
    config.write_text("data: lab\nout: models/x\nepochs_top: 3\nfield_data: [field_a, field_b]\ninterpolate: true\n")
    args = build_parser().parse_args(with_config(["train", "--config", str(config), "--epochs-top", "1"]))
    assert (args.data, args.out, args.epochs_top) == ("lab", "models/x", 1)
    assert args.field_data == ["field_a", "field_b"] and args.interpolate is True


@pytest.mark.parametrize(("text", "message"), [
    ("data: lab\nepochs: 3\n", "unknown option(s) epochs"),
    ("data: lab\nimage_size: null\n", "image_size has no value"),
])
def test_train_config_errors_name_the_key(tmp_path, capsys, text, message):
    config = tmp_path / "release.yaml"
    config.write_text(text)
    assert main(["train", "--config", str(config)]) == 2
    assert message in capsys.readouterr().err
