"""Test environment. The Hub variables must be set before anything imports huggingface_hub: it reads them
once at import, and a late HF_HUB_OFFLINE sends the client to huggingface.co for 20-100 s of retries."""

import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="cropdx-hf-home-"))
_CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("CROPDX_MODELS", os.path.join(_CHECKOUT, "models"))  # the CLI under test finds the releases

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from cropdx_hf.release.registry import Releases  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
LEAVES = FIXTURES / "leaves"
SHARED_DATA = ROOT.parent / "shared" / "data" / "plantvillage"
RELEASES = Releases(ROOT / "models")


@pytest.fixture(scope="session")
def leaves_dir() -> Path:
    return LEAVES


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "manifest.csv").is_file():
        pytest.skip(f"the PlantVillage developer pool is not at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def leaf_image() -> Path:
    return sorted(LEAVES.glob("Tomato_Early_blight/*"))[0]


@pytest.fixture(scope="session")
def fixture_dataset():
    from cropdx_hf.data.loading import load_leaf_dataset

    return load_leaf_dataset(LEAVES)


TINY = {"image_size": 64, "batch_size": 8, "epochs_head": 4, "epochs_top": 2, "epochs_full": 1,
        "lr_head": 5e-3, "train_views": 1}


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A real three-stage run on the fixture photos at 64 px (about 20 s): (StagedTrainer, model folder)."""
    from cropdx_hf.training.trainer import StagedTrainer, TrainConfig

    out = tmp_path_factory.mktemp("run") / "model"
    trainer = StagedTrainer(TrainConfig(data=str(LEAVES), out=str(out), backbone="mobilenetv2_100", **TINY))
    trainer.run()
    return trainer, out


@pytest.fixture(scope="session")
def field_photos(tmp_path_factory) -> Path:
    """A small scripts/field_photos.py-shaped folder from scikit-image's bundled photos (no Debian downloads)."""
    from PIL import Image
    from skimage import data as skdata

    root = tmp_path_factory.mktemp("field_photos")
    roles = {"backgrounds/train": ("grass", "gravel"), "backgrounds/proxy": ("brick", "coffee"),
             "non_leaf/fit": ("astronaut", "rocket", "coffee", "camera", "clock", "colorwheel"),
             "non_leaf/holdout": ("chelsea", "logo"), "leaves/fit": ("grass",), "other_plants": ()}
    for role, names in roles.items():
        (root / role).mkdir(parents=True)
        for name in names:
            Image.fromarray(getattr(skdata, name)()).convert("RGB").save(root / role / f"{name}.png")
    return root


@pytest.fixture(scope="session")
def default_exports(tmp_path_factory) -> Path:
    """The default release's ONNX export made again as scripts/setup.sh makes it on a fresh clone (classifier and
    leaf gate), in a folder of its own."""
    from cropdx_hf.data.loading import load_leaf_dataset
    from cropdx_hf.gate.leaf_gate import GATE_FOLDER
    from cropdx_hf.release.export import export_release
    from cropdx_hf.release.registry import DEFAULT_RELEASE

    root = tmp_path_factory.mktemp("exports")
    fixtures = load_leaf_dataset(LEAVES)
    export_release(RELEASES.path(DEFAULT_RELEASE), fixtures, root / DEFAULT_RELEASE, root / GATE_FOLDER, "all",
                   fixtures, rebuild=True)
    return root


def load_space_app():
    """space/app.py as a module (it is a script folder, not a package)."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("space_app", ROOT / "space" / "app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["space_app"] = module
    spec.loader.exec_module(module)
    return module
