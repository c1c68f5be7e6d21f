"""Open any user-supplied image safely: one clear `ImageError` instead of a traceback.

Pillow alone raises half a dozen exception types (and only warns on decompression bombs below 2x its
limit); farmers' uploads and scraped datasets hit all of them, so every reader in cropdx goes through here.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from pathlib import Path

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from cropdx_hf.errors import DataError

MAX_PIXELS = 40_000_000  # ~6300x6300; above this decoding alone would cost seconds and GBs
MIN_SIDE = 16  # smaller than this holds no leaf texture
MAX_BYTES = 20 * 1024 * 1024
WORKING_SIDE = 1024  # longest side a photo is kept at once decoded
PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})


class ImageError(ValueError):
    """The input is not a usable photo; the message says why, for the person who sent it."""


def load_image(source: str | Path | bytes | Image.Image, *, name: str | None = None) -> Image.Image:
    """Decode, apply EXIF rotation, flatten to 8-bit RGB; raise ImageError for anything unusable."""
    label = name or (str(source) if isinstance(source, str | Path) else "the image")
    if isinstance(source, Image.Image):
        return _to_rgb(source, label, owned=False)
    data = read_photo_bytes(source, label)
    if not data:
        raise ImageError(f"{label}: the file is empty (0 bytes)")
    _check_bytes(len(data), label)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            _check_size(image.size, label)
            image.draft("RGB", (WORKING_SIDE, WORKING_SIDE))  # a JPEG decodes straight at a fraction of its size
            image.load()
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ImageError(f"{label}: not a readable image ({_reason(exc)})") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{label}: the image is damaged or truncated ({exc})") from exc
    return _to_rgb(image, label)


def folder_photos(folder: str | Path) -> list[Path]:
    """Every photo file under `folder`, recursively, in a stable order (by path)."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)


def find_photos(paths: Sequence[str | Path]) -> list[str]:
    """Files as given and folders expanded to the photos inside; a path that is neither, or a folder with no photos,
    is a `DataError` found before any model is loaded."""
    photos: list[str] = []
    for path in paths:
        if Path(path).is_dir():
            found = folder_photos(path)
            if not found:
                raise DataError(f"{path}: a folder with no photos ({', '.join(sorted(PHOTO_SUFFIXES))})")
            photos += [str(p) for p in found]
        elif Path(path).is_file():
            photos.append(str(path))
        else:
            raise DataError(f"{path}: no such file or folder")
    return photos


def stored_photo(image: dict) -> bytes | str:
    """What a `datasets` Image column holds for one row when it is not decoded (`Image(decode=False)`): the
    photo's bytes when the dataset embeds them, else its path."""
    return image.get("bytes") or image["path"]


def load_stored_photo(image: dict) -> Image.Image:
    """`load_image` on one undecoded `datasets` Image value, errors named by its path."""
    return load_image(stored_photo(image), name=image.get("path"))


def read_photo_bytes(source: str | Path | bytes, label: str) -> bytes:
    """A photo file's bytes, refused unread when it is missing or over MAX_BYTES (an `ImageError` naming `label`)."""
    if isinstance(source, bytes):
        return source
    path = Path(source)
    if not path.is_file():
        raise ImageError(f"{label}: no such file")
    _check_bytes(path.stat().st_size, label)  # before reading: a huge file is refused unread
    return path.read_bytes()


def _check_bytes(size: int, label: str) -> None:
    if size > MAX_BYTES:
        raise ImageError(f"{label}: {size / 1e6:.1f} MB is over the {MAX_BYTES // 2**20} MB limit")


def _check_size(size: tuple[int, int], label: str) -> None:
    width, height = size
    if width * height > MAX_PIXELS:
        raise ImageError(f"{label}: {width}x{height} pixels is too large (limit {MAX_PIXELS:,} pixels)")
    if min(width, height) < MIN_SIDE:
        raise ImageError(f"{label}: {width}x{height} pixels is too small to show a leaf")


def _reason(exc: Exception) -> str:
    if isinstance(exc, UnidentifiedImageError):
        return "unknown or unsupported format"
    return "decompression bomb: the pixel count is far above what the file size suggests"


def _to_rgb(image: Image.Image, label: str, owned: bool = True) -> Image.Image:
    """8-bit RGB, upright, at most WORKING_SIDE. An upright RGB photo that needs no reduction comes back as it is,
    uncopied: the service and the predictors each pass the photo through here, and every copy held the GIL that
    concurrent requests share. A photo the caller gave (`owned` False) is never changed in place."""
    _check_size(image.size, label)
    image.load()  # a lazily opened photo fails here, not later in a model
    if image.getexif().get(ExifTags.Base.Orientation, 1) != 1:  # phone photos are stored sideways with a tag
        image, owned = ImageOps.exif_transpose(image), True
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        image = image.point(lambda v: v / 256).convert("L")  # 16-bit: scale, do not clip
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        background = Image.new("RGB", image.size, (255, 255, 255))
        rgba = image.convert("RGBA")
        background.paste(rgba, mask=rgba.getchannel("A"))
        image = background
    rgb, owned = (image, owned) if image.mode == "RGB" else (image.convert("RGB"), True)
    # every model and check looks at 224-288 px: a 12-megapixel phone photo is used at WORKING_SIDE, which costs
    # one fast reduction here instead of a slow full-size resize in each of them
    if max(rgb.size) > WORKING_SIDE:
        rgb = rgb if owned else rgb.copy()
        rgb.thumbnail((WORKING_SIDE, WORKING_SIDE), Image.BICUBIC, reducing_gap=2.0)
    return rgb
