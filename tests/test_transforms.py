import torch
from torchvision import transforms as T

from cropdx_hf.modeling.backbones import create_backbone
from cropdx_hf.modeling.transforms import batch_transform, data_config, eval_transform
from cropdx_hf.photos import load_image
from cropdx_hf.training.views import train_transform


def test_train_transform_is_the_nine_step_recipe():
    steps = train_transform({"input_size": (3, 128, 128), "mean": (0.1, 0.2, 0.3), "std": (0.4, 0.5, 0.6),
                             "interpolation": "bicubic"}).transforms
    assert [type(s).__name__ for s in steps] == [
        "RandomResizedCrop", "RandomHorizontalFlip", "RandomVerticalFlip", "RandomRotation", "ColorJitter",
        "RandomApply", "ToTensor", "Normalize", "RandomErasing"]
    crop, hflip, vflip, rotation, jitter, blur, _, norm, erase = steps
    assert crop.size == (128, 128) and crop.scale == (0.8, 1.0)
    assert (hflip.p, vflip.p, erase.p, blur.p) == (0.5, 0.2, 0.1, 0.2)
    assert rotation.degrees == [-20.0, 20.0]
    assert jitter.brightness == (0.8, 1.2) and jitter.hue == (-0.05, 0.05)
    assert isinstance(blur.transforms[0], T.GaussianBlur) and blur.transforms[0].kernel_size == (3, 3)
    assert norm.mean == (0.1, 0.2, 0.3) and norm.std == (0.4, 0.5, 0.6)


def test_eval_transform_follows_each_backbones_pretrained_config(leaf_image):
    image = load_image(leaf_image)
    for name, size, mean in [("efficientnet_lite0", 224, 0.5), ("mobilenetv2_100", 224, 0.485),
                             ("efficientnet_lite2", 260, 0.5)]:
        config = data_config(create_backbone(name))
        assert config["input_size"] == (3, size, size) and config["mean"][0] == mean
        first = eval_transform(config)(image)
        assert first.shape == (3, size, size)
        assert torch.equal(first, eval_transform(config)(image)), "eval preprocessing must be deterministic"


def test_batch_transform_decodes_undecoded_rows(fixture_dataset):
    config = data_config(create_backbone("efficientnet_lite0"), image_size=96)
    batch = fixture_dataset.rows.with_transform(batch_transform(train_transform(config)))[:4]
    assert [t.shape for t in batch["pixel_values"]] == [(3, 96, 96)] * 4
    assert batch["labels"] == fixture_dataset.rows["label"][:4]
