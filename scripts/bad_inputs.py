"""Awkward uploads, built in memory: each either decodes to an RGB image or must raise ImageError (the tests and
scripts/soak_space.py send them)."""

import io

import numpy as np
from PIL import Image


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _leafy(size=(64, 48)) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8))


def usable() -> dict[str, bytes]:
    """Unusual but valid images: each must decode to RGB."""
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise
    gif_frames = [_leafy(), _leafy().rotate(90)]
    sixteen = Image.fromarray(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16)
    return {
        "cmyk.jpg": _encode(_leafy().convert("CMYK"), "JPEG"),
        "16bit.png": _encode(sixteen, "PNG"),
        "rgba.png": _encode(_leafy().convert("RGBA"), "PNG"),
        "gray.png": _encode(_leafy().convert("L"), "PNG"),
        "exif_rotated.jpg": _encode(_leafy(), "JPEG", exif=exif),
        "animated.gif": _encode(gif_frames[0], "GIF", save_all=True, append_images=gif_frames[1:]),
    }


def unusable() -> dict[str, bytes]:
    """Inputs that must give a clear ImageError."""
    jpeg = _encode(_leafy((256, 256)), "JPEG")
    bomb = _encode(Image.new("1", (12000, 12000)), "PNG")  # ~20 KB on disk, 144 Mpx decoded
    return {
        "not_an_image.jpg": b"this is a text file pretending to be a photo\n" * 20,
        "truncated.jpg": jpeg[: len(jpeg) // 2],
        "empty.jpg": b"",
        "one_pixel.png": _encode(Image.new("RGB", (1, 1)), "PNG"),
        "bomb.png": bomb,
        "huge.png": _encode(Image.new("1", (7000, 7000)), "PNG"),  # under Pillow's limit, over ours
    }
