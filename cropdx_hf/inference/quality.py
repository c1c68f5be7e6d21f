"""Is this photo good enough to diagnose from? Cheap statistics that run before the classifier is trusted.

A grey photo cannot show the yellowing and lesion colours most diagnoses rest on, a dark one or one whose leaf is
blown out hides them (a leaf on white paper is not blown out: the backdrop is left out of that check), a blurred
one smears spots into shadows, and a thumbnail or a strip holds too few pixels of leaf. The classifier answers
all of them with confidence anyway (the grey early-blight example came out "healthy, 95 %"), so each gets a
named check with a tip instead. numpy and Pillow only (torch-free). The limits and what they cost on good and
degraded photos are measured by `python scripts/bench_quality.py --json` (docs/quality.md).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

WORK_SIDE = 224  # the sharpness is measured on a copy whose short side is at most this long
MIN_COLOURFULNESS = 6.0  # Hasler & Suesstrunk's metric on 0-255 values: 0 for a grey photo, 19+ for lab leaves
# Too dark: a low mean AND no bright highlights (a dark leaf on black cloth has a low mean but bright highlights).
# Two stops under scale every sRGB value by about 0.53, so even the brightest pixels of such a photo stay below
# 140; the brightest 0.1 % (not 1 %) tells that from a dim lab photo with a few bright spots.
# Too dark: even the brightest 0.1 % of the photo stays under this luma, so nothing in it is lit. Two stops under
# in linear light is about 0.53x in sRGB, so even a clipped white falls to 136; a dim scene with a dark backdrop
# (a lab leaf on black cloth) keeps a few bright highlights on the leaf and passes.
DARK_HIGHLIGHTS = 140.0
# Blown out is judged on the subject, not the backdrop: pixels whose every channel is at least 235 and within 30 of
# the others are a white backdrop (paper, a table, a studio background: extension services ask for a leaf on white)
# and are left out. What remains is scored by a small logistic model (resources/exposure.json, fitted by
# scripts/fit_exposure.py) on the brightness quantiles of the subject and of its leaf-coloured pixels: over-exposure
# lifts the shadows, piles the tones up under white and clips colour channels, where a well-exposed leaf on white
# keeps its dark veins and shading. A photo that is nearly all backdrop has no subject left to see.
BACKDROP_MIN, BACKDROP_SPREAD = 235, 30  # channel floor; max - min channel
QUANTILES = (0.02, 0.1, 0.25, 0.5, 0.75, 0.9, 0.98)
MIN_SUBJECT = 0.02  # of the frame
EXPOSURE_MODEL = Path(__file__).parent / "resources" / "exposure.json"
MIN_SHARPNESS = 8.0  # variance of the Laplacian of the luma
MIN_SIDE, MAX_ASPECT = 128, 3.0  # pixels of the short side; long side / short side

TIPS = {
    "colour": "Take a colour photo: colour is what most of these diagnoses rest on.",
    "too_dark": "The photo is too dark: step into even daylight or turn the leaf towards the light.",
    "blown_out": "The leaf is too bright to show its spots: avoid direct sun on the leaf, or shade it with your body.",
    "sharpness": "The photo is blurred: hold the phone still and tap the leaf to focus.",
    "too_small": "The photo is too small: get closer and fill the frame with one leaf.",
    "strip": "The photo is a narrow strip: get closer and fill the frame with one leaf.",
}


@dataclass(frozen=True)
class QualityCheck:
    name: str
    passed: bool
    measured: dict[str, float]
    rule: str  # what a passing photo satisfies, in the terms of `measured`

    @property
    def tip(self) -> str:
        return TIPS[self.name]


@dataclass(frozen=True)
class PhotoQuality:
    checks: tuple[QualityCheck, ...]

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failed(self) -> list[QualityCheck]:
        return [check for check in self.checks if not check.passed]

    def to_dict(self) -> dict:
        return {"passed": self.passed, "checks": [{**asdict(c), "tip": c.tip} for c in self.checks]}


def _kept(size: tuple[int, int]) -> tuple[float, float]:
    """Width and height of the centre the statistics read: at most 3:1 (a 4000 x 20 strip is judged on its
    middle)."""
    width, height = size
    return min(width, MAX_ASPECT * height), min(height, MAX_ASPECT * width)


def reduced_copy(photo: Image.Image) -> Image.Image:
    """The photo's centre (`_kept`) box-averaged by an integer factor to WORK_SIDE-2x WORK_SIDE on its short side
    (never enlarged): a 1024 x 768 phone photo in about 4 ms."""
    (width, height), (keep_w, keep_h) = photo.size, _kept(photo.size)
    box = (round((width - keep_w) / 2), round((height - keep_h) / 2), round((width + keep_w) / 2),
           round((height + keep_h) / 2))
    factor = max(1, int(min(box[2] - box[0], box[3] - box[1]) // WORK_SIDE))
    photo = photo if photo.mode in ("RGB", "L") else photo.convert("RGB")  # reduce() refuses P, 1 and I;16
    return photo.reduce(factor, box=box)


def sampled_rgb(reduced: Image.Image) -> np.ndarray:
    """Every other pixel of the reduced copy: colour and exposure statistics do not depend on the scale."""
    return np.asarray(reduced.convert("RGB"))[::2, ::2].astype(np.float32)


def assess(photo: Image.Image) -> PhotoQuality:
    """Every check on one decoded RGB photo."""
    short, long = min(photo.size), max(photo.size)
    reduced = reduced_copy(photo)
    rgb = sampled_rgb(reduced)
    return PhotoQuality((_colour(rgb), _darkness(reduced), _blown_out(rgb), _sharpness(reduced, photo.size),
                         QualityCheck("too_small", short >= MIN_SIDE, {"short_side_px": short},
                                      f"short_side_px >= {MIN_SIDE}"),
                         QualityCheck("strip", long / short <= MAX_ASPECT, {"aspect_ratio": round(long / short, 2)},
                                      f"aspect_ratio <= {MAX_ASPECT:g}")))


def _colour(rgb: np.ndarray) -> QualityCheck:
    colour = colourfulness(rgb)
    return QualityCheck("colour", colour >= MIN_COLOURFULNESS, {"colourfulness": round(colour, 2)},
                        f"colourfulness >= {MIN_COLOURFULNESS:g}")


def _darkness(reduced: Image.Image) -> QualityCheck:
    levels = np.bincount(np.asarray(reduced.convert("L"))[::2, ::2].ravel(), minlength=256)
    mean = float(levels @ np.arange(256) / levels.sum())
    highlights = float(level_at_share(levels, 0.999))
    return QualityCheck("too_dark", highlights >= DARK_HIGHLIGHTS,
                        {"mean_luma": round(mean, 1), "highlights_luma": round(highlights, 1)},
                        f"highlights_luma >= {DARK_HIGHLIGHTS:g}")


def _blown_out(rgb: np.ndarray) -> QualityCheck:
    features, subject = exposure_features(rgb)
    score, threshold = overexposure_score(features), float(exposure_model()["threshold"])
    return QualityCheck("blown_out", subject >= MIN_SUBJECT and score <= threshold,
                        {"subject_share": round(subject, 4), "overexposure_score": round(score, 3)},
                        f"subject_share >= {MIN_SUBJECT:g} and overexposure_score <= {threshold:.3f}")


def _sharpness(reduced: Image.Image, size: tuple[int, int]) -> QualityCheck:
    """The luma alone, resized to the one scale (WORK_SIDE on the photo's short side) the blur limit holds at."""
    scale = min(1.0, WORK_SIDE / min(size))
    keep_w, keep_h = _kept(size)
    size = (max(1, round(keep_w * scale)), max(1, round(keep_h * scale)))
    luma = np.asarray(reduced.convert("F").resize(size, Image.BILINEAR))  # F: Pillow's luma weights, unrounded
    sharpness = float(laplacian(luma).var())
    return QualityCheck("sharpness", sharpness >= MIN_SHARPNESS, {"laplacian_variance": round(sharpness, 2)},
                        f"laplacian_variance >= {MIN_SHARPNESS:g}")


def exposure_features(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    """What the exposure model reads, and the subject's share of the frame: luma quantiles of the subject (the
    photo without its white backdrop), its shares at luma 240+ and with a channel at 250+, luma quantiles of its
    leaf-coloured pixels (green the largest channel, or yellow to brown), the backdrop's share and the subject's
    mean chroma."""
    low, high = rgb.min(-1), rgb.max(-1)
    backdrop = (low >= BACKDROP_MIN) & (high - low <= BACKDROP_SPREAD)
    luma = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    leafy = (high - low >= 20) & (((green >= red) & (green >= blue)) | ((red >= green) & (green > blue)
                                                                       & (5 * green >= 2 * red)))
    subject = luma[~backdrop] if (~backdrop).sum() > 20 else np.array([255.0], np.float32)
    leaf = luma[leafy] if leafy.sum() > 20 else subject
    clipped = (high[~backdrop] >= 250).mean() if (~backdrop).any() else 1.0
    chroma = (high - low)[~backdrop].mean() if (~backdrop).any() else 0.0
    features = np.r_[np.quantile(subject, QUANTILES), (subject >= 240).mean(), clipped, np.quantile(leaf, QUANTILES),
                     backdrop.mean(), chroma]
    return features.astype(np.float64), float(1 - backdrop.mean())


@cache
def exposure_model() -> dict[str, np.ndarray]:
    """The fitted over-exposure score: standardise, expand to degree-2 monomials (`powers`), standardise,
    weigh; a photo scoring above `threshold` is blown out."""
    return {k: np.asarray(v) for k, v in json.loads(EXPOSURE_MODEL.read_text()).items()}


def overexposure_score(features: np.ndarray) -> float:
    """`exposure_model()` in numpy: the serving path needs no scikit-learn."""
    model = exposure_model()
    x = (features - model["mean"]) / model["scale"]
    expanded = np.prod(x[None, :] ** model["powers"], axis=1)
    return float(((expanded - model["expanded_mean"]) / model["expanded_scale"]) @ model["weights"] + model["bias"])


def level_at_share(levels: np.ndarray, share: float) -> int:
    """The lowest luma level at or below which `share` of the pixels lie (numpy's inverted-CDF percentile), from
    the 256-level histogram: a fifth of the time of a partial sort of the pixels."""
    return int(np.searchsorted(np.cumsum(levels), share * levels.sum()))


def laplacian(luma: np.ndarray) -> np.ndarray:
    """The 5-point Laplacian with mirrored edges (scipy.ndimage.laplace's result; numpy keeps scipy out of the
    serving process)."""
    padded = np.pad(luma, 1, mode="symmetric")
    return (padded[:-2, 1:-1] + padded[2:, 1:-1] + padded[1:-1, :-2] + padded[1:-1, 2:]) - 4 * luma


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler & Suesstrunk (2003): spread and mean of the red-green and yellow-blue opponent channels."""
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))
