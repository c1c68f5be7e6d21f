"""Test environment. The Hub variables must be set before anything imports huggingface_hub: it reads them
once at import, and a late HF_HUB_OFFLINE sends the client to huggingface.co for 20-100 s of retries."""

import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="cropdx-hf-home-"))

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
LEAVES = FIXTURES / "leaves"
SHARED_DATA = ROOT.parent / "shared" / "data" / "plantvillage"


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
    from cropdx_hf.data import load_leaf_dataset

    return load_leaf_dataset(LEAVES)


TINY = {"image_size": 64, "batch_size": 8, "epochs_head": 4, "epochs_top": 2, "epochs_full": 1,
        "lr_head": 5e-3, "train_views": 1}


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A real three-stage run on the fixture photos at 64 px (about 20 s): (StagedTrainer, model folder)."""
    from cropdx_hf.train import StagedTrainer, TrainConfig

    out = tmp_path_factory.mktemp("run") / "model"
    trainer = StagedTrainer(TrainConfig(data=str(LEAVES), out=str(out), backbone="mobilenetv2_100", **TINY))
    trainer.run()
    return trainer, out
