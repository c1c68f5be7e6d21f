import pytest
from bad_inputs import unusable, usable
from PIL import Image

from cropdx_hf.photos import ImageError, load_image

USABLE, UNUSABLE = usable(), unusable()


@pytest.mark.parametrize("name", sorted(USABLE))
def test_unusual_images_decode_to_rgb(name):
    image = load_image(USABLE[name], name=name)
    assert image.mode == "RGB"
    assert min(image.size) >= 16


def test_exif_rotation_is_applied():
    assert load_image(USABLE["exif_rotated.jpg"]).size == (48, 64)  # stored 64x48, tagged as rotated


def test_16_bit_is_scaled_not_clipped():
    pixels = load_image(USABLE["16bit.png"]).getextrema()[0]
    assert pixels[1] > 200 and pixels[0] < 10


@pytest.mark.parametrize(("name", "message"), [
    ("not_an_image.jpg", "not a readable image"),
    ("truncated.jpg", "damaged or truncated"),
    ("empty.jpg", "empty"),
    ("one_pixel.png", "too small"),
    ("bomb.png", "decompression bomb"),
    ("huge.png", "too large"),
])
def test_unusable_inputs_raise_one_clear_error(name, message):
    with pytest.raises(ImageError, match=message) as info:
        load_image(UNUSABLE[name], name=name)
    assert name in str(info.value)


def test_missing_file_and_pil_input(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.jpg")
    assert load_image(Image.new("RGBA", (32, 32))).mode == "RGB"


def test_an_upright_rgb_photo_passes_uncopied_and_a_callers_photo_is_never_changed():
    upright = Image.new("RGB", (300, 200))
    assert load_image(upright) is upright  # a second pass through the diagnosis path costs nothing
    rotated = load_image(USABLE["exif_rotated.jpg"])
    assert load_image(rotated) is rotated  # the rotation tag is gone once applied: it is not applied twice
    large = Image.new("RGB", (3000, 1500))
    assert load_image(large).size == (1024, 512) and large.size == (3000, 1500)
