"""Collect real non-leaf photos that ship offline, for measuring the leaf detector.

Sources, each used when present:
- scikit-image's sample photos (astronaut, cat, coffee, rocket, ...);
- Debian's `darknet` package (/usr/share/darknet/data/*.jpg: dog, eagle, giraffe, horses, person, ...);
- photos bundled with installed Python packages (matplotlib's Grace Hopper, Gradio's cheetahs, lion, bus,
  tower, scikit-learn's China palace and flower);
- screenshots: Debian chromium (through Playwright) rendering local HTML documentation pages.

    python scripts/non_leaf_photos.py OUT_DIR
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

from PIL import Image
from skimage import data as skdata

SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "motorcycle_left", "motorcycle_right",
                  "immunohistochemistry", "hubble_deep_field", "coins", "moon", "page", "retina", "cat",
                  "colorwheel", "logo", "text", "clock", "grass", "gravel", "brick", "shepp_logan_phantom")
DARKNET = Path("/usr/share/darknet/data")
PACKAGE_PHOTOS = {
    "matplotlib": ["mpl-data/sample_data/grace_hopper.jpg"],
    "gradio": ["media_assets/images/cheetah.jpg", "media_assets/images/cheetah1.jpg", "media_assets/images/lion.jpg",
               "media_assets/images/bus.png", "media_assets/images/tower.jpg", "media_assets/images/groot.jpeg",
               "test_data/cheetah2.jpg"],
    "sklearn": ["datasets/images/china.jpg", "datasets/images/flower.jpg"],
}
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT_PAGES = ("/usr/share/doc/base-passwd/users-and-groups.html", "/usr/share/doc/libffi8/html/The-Basics.html",
                    "/usr/share/doc/libffi8/html/Introduction.html")


def skimage_photos(out: Path) -> list[Path]:
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
    return written


def copied_photos(out: Path) -> list[Path]:
    sources = [(f"darknet_{p.name}", p) for p in sorted(DARKNET.glob("*.jpg"))] if DARKNET.is_dir() else []
    for package, files in PACKAGE_PHOTOS.items():
        spec = importlib.util.find_spec(package)
        root = Path(spec.origin).parent if spec and spec.origin else None
        sources += [(f"{package}_{Path(f).name}", root / f) for f in files if root and (root / f).is_file()]
    for name, source in sources:
        shutil.copy(source, out / name)
    return [out / name for name, _ in sources]


def screenshots(out: Path) -> list[Path]:
    pages = [Path(p) for p in SCREENSHOT_PAGES if Path(p).is_file()]
    if not pages or not CHROMIUM.exists() or importlib.util.find_spec("playwright") is None:
        return []
    from playwright.sync_api import sync_playwright

    written = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        for html in pages:
            page.goto(html.as_uri())
            path = out / f"screenshot_{html.stem}.png"
            page.screenshot(path=str(path))
            written.append(path)
        browser.close()
    return written


def collect(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    return skimage_photos(out) + copied_photos(out) + screenshots(out)


if __name__ == "__main__":
    paths = collect(Path(sys.argv[1]))
    print(f"{len(paths)} non-leaf photos in {sys.argv[1]}")
