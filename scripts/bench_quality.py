"""The photo-quality check, measured: how often it flags good photos and how often it catches bad ones.

Good photos: the leaf-grouped test split, its field proxy and real field photos (--field-data; PlantDoc's hold
leaves on white paper and stock photos on white). Bad photos: copies of the same photos made grayscale, 2 EV
darker and brighter (in linear light), blurred (Gaussian sigma 3 at 224 px) and downscaled to 96 px. Targets: at
most 1 % of lab test photos and 2 % of real field photos flagged; at least 95 % of each degraded set flagged by its
own check. Also the time `assess` takes per photo, on a 256-px lab photo and on a 12-megapixel phone-sized one.

    python scripts/bench_quality.py --data ../shared/data/plantvillage --field-photos field_photos \
        --field-data ../shared/data/plantdoc_field --json
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from cropdx_hf.data.loading import load_leaf_dataset
from cropdx_hf.evaluation.predictions import select_split
from cropdx_hf.field.proxy import FieldScenes
from cropdx_hf.inference.quality import WORK_SIDE, assess
from cropdx_hf.photos import load_image, load_stored_photo
from cropdx_hf.release.timing import latency_summary, timed

ROOT = Path(__file__).resolve().parents[1]
SPLIT_CSV = ROOT / "splits" / "plantvillage.csv"
LEAVES = ROOT / "tests" / "fixtures" / "leaves"


def exposure(photo: Image.Image, stops: float) -> Image.Image:
    linear = (np.asarray(photo, np.float32) / 255) ** 2.2 * 2.0 ** stops
    return Image.fromarray((np.clip(linear, 0, 1) ** (1 / 2.2) * 255).round().astype(np.uint8))


def blurred(photo: Image.Image) -> Image.Image:
    scale = WORK_SIDE / min(photo.size)
    small = photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.BILINEAR)
    return small.filter(ImageFilter.GaussianBlur(3))


def downscaled(photo: Image.Image) -> Image.Image:
    scale = 96 / max(photo.size)
    return photo.resize((max(1, round(photo.width * scale)), max(1, round(photo.height * scale))), Image.BICUBIC)


DEGRADATIONS = {  # name -> (how, the check that must catch it)
    "grayscale": (lambda p: ImageOps.grayscale(p).convert("RGB"), "colour"),
    "minus_2_ev": (lambda p: exposure(p, -2), "too_dark"),
    "plus_2_ev": (lambda p: exposure(p, 2), "blown_out"),
    "blur_sigma_3": (blurred, "sharpness"),
    "downscale_96px": (downscaled, "too_small"),
}


def flag_rates(photos: list[Image.Image], expected: str | None = None) -> dict[str, float]:
    results = [assess(photo) for photo in photos]
    rates = {"any_check": float(np.mean([not r.passed for r in results])), "n": len(results)}
    for check in results[0].checks:
        rates[check.name] = float(np.mean([not c.passed for r in results for c in r.checks if c.name == check.name]))
    if expected:
        rates["right_reason"] = rates[expected]
    return rates


def statistics(photos: list[Image.Image]) -> dict[str, dict[str, float]]:
    """Quantiles of each measured statistic: where a limit can go."""
    values: dict[str, list[float]] = {}
    for photo in photos:
        for check in assess(photo).checks:
            for name, value in check.measured.items():
                values.setdefault(name, []).append(value)
    return {name: {f"q{q:g}": float(np.quantile(v, q / 100)) for q in (0.5, 1, 5, 50, 95, 99, 99.5)}
            for name, v in values.items()}


def timing() -> dict[str, float]:
    """`assess` on a lab photo and on a 12-megapixel phone JPEG as the product sees it (decoded by `load_image`
    at most WORKING_SIDE on the long side); and that decoding, which every model and check shares."""
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (3000, 4000, 3), dtype=np.uint8)).save(buffer, "JPEG", quality=90)
    phone_jpeg = buffer.getvalue()
    photos = {"lab_256px": load_image(sorted(LEAVES.glob("*/*"))[0]).resize((256, 256)),
              "phone_12mp": load_image(phone_jpeg)}
    out = {f"{name}_assess_p50_ms": latency_summary(timed(lambda p=photo: assess(p), 50, 5))["p50_ms"]
           for name, photo in photos.items()}
    out["phone_12mp_decode_p50_ms"] = latency_summary(timed(lambda: load_image(phone_jpeg), 10, 2))["p50_ms"]
    return out


def decode(rows) -> list[Image.Image]:
    return [load_stored_photo(image) for image in rows["image"]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--field-photos", required=True, type=Path)
    parser.add_argument("--field-data", type=Path, help="real field photos (class per sub-folder)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("reports/quality"))
    args = parser.parse_args()
    data = load_leaf_dataset(args.data)
    test = select_split(data, SPLIT_CSV, "test")
    scenes = FieldScenes.from_folder(args.field_photos, select_split(data, SPLIT_CSV, "train"))
    good = {"lab_test": decode(test), "field_proxy_test": decode(scenes.proxy(test))}
    if args.field_data:
        good["real_field"] = decode(load_leaf_dataset(args.field_data).rows)
    report = {"command": "python scripts/bench_quality.py " + " ".join(sys.argv[1:]), "timing": timing(),
              "good": {name: flag_rates(photos) for name, photos in good.items()},
              "statistics": {name: statistics(photos) for name, photos in good.items()}, "degraded": {}}
    for name, (degrade, check) in DEGRADATIONS.items():
        for source, photos in good.items():
            copies = [degrade(photo) for photo in photos]
            report["degraded"][f"{source}/{name}"] = flag_rates(copies, check)
            report["statistics"][f"{source}/{name}"] = statistics(copies)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_quality.json").write_text(json.dumps(report, indent=2))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for name, rates in {**report["good"], **report["degraded"]}.items():
            print(f"{name:40s} flagged {rates['any_check']:.1%}" +
                  (f", for the right reason {rates['right_reason']:.1%}" if "right_reason" in rates else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
