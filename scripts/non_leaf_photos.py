"""Collect real non-leaf photos that ship offline, for measuring the leaf detector.

Sources: scikit-image's sample photos and Debian's `darknet` package (/usr/share/darknet/data/*.jpg:
dog, eagle, giraffe, horses, person, ...), when installed (`apt-get install darknet`).

    python scripts/non_leaf_photos.py OUT_DIR
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from PIL import Image
from skimage import data as skdata

SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "motorcycle_left", "motorcycle_right",
                  "immunohistochemistry", "hubble_deep_field", "coins", "moon", "page", "retina", "cat",
                  "colorwheel", "logo", "text", "clock", "grass", "gravel", "brick", "shepp_logan_phantom")
DARKNET = Path("/usr/share/darknet/data")


def collect(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in SKIMAGE_PHOTOS:
        loader = getattr(skdata, name, None)
        if loader is None:
            continue
        try:
            pixels = loader()
        except Exception:  # some samples need an optional download (pooch); skip those offline
            continue
        path = out / f"skimage_{name}.png"
        Image.fromarray(pixels).convert("RGB").save(path)
        written.append(path)
    for jpg in sorted(DARKNET.glob("*.jpg")) if DARKNET.is_dir() else []:
        shutil.copy(jpg, out / f"darknet_{jpg.name}")
        written.append(out / f"darknet_{jpg.name}")
    return written


if __name__ == "__main__":
    paths = collect(Path(sys.argv[1]))
    print(f"{len(paths)} non-leaf photos in {sys.argv[1]}")
