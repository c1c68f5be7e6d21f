"""Is this photo good enough to diagnose from? Cheap statistics that run before the classifier is trusted.

A grey photo cannot show the yellowing and lesion colours most diagnoses rest on, a dark one or one whose leaf is
blown out hides them (a leaf on white paper is not blown out: the backdrop is left out of that check), a blurred
one smears spots into shadows, and a thumbnail or a strip holds too few pixels of leaf. The classifier answers
all of them with confidence anyway (the grey early-blight example came out "healthy, 95 %"), so each gets a
named check with a tip instead. numpy and Pillow only (torch-free). The limits and what they cost on good and
degraded photos are measured by `python scripts/bench_quality.py --json` (docs/quality.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

WORK_SIDE = 224  # the sharpness is measured on a copy whose short side is at most this long
MIN_COLOURFULNESS = 6.0  # Hasler & Suesstrunk's metric on 0-255 values: 0 for a grey photo, 19+ for lab leaves
# Too dark: a low mean AND no bright highlights (a dark leaf on black cloth has a low mean but bright highlights).
# Two stops under scale every sRGB value by about 0.53, so even the brightest pixels of such a photo stay below
# 140; the brightest 0.1 % (not 1 %) tells that from a dim lab photo with a few bright spots.
DARK_MEAN, DARK_HIGHLIGHTS = 90.0, 140.0  # mean luma; luma of the brightest 0.1 %
# Blown out is judged on the subject, not the backdrop: pixels whose every channel is at least 235 and within 30 of
# the others are a white backdrop (paper, a table, a studio background: extension services ask for a leaf on white)
# and are left out. The rest is blown out when its mean luma is very high, or high with clipped areas, or when the
# leaf-coloured pixels (green, yellow, brown) themselves are bright; a photo that is nearly all backdrop has no
# subject left to see.
BACKDROP_MIN, BACKDROP_SPREAD = 235, 30  # channel floor; max - min channel
BRIGHT_MEAN, CLIPPED_MEAN, MAX_CLIPPED = 205.0, 160.0, 0.02  # subject mean luma limits; share of it at 240 or more
LEAF_BRIGHT_MEAN = 180.0  # mean luma of the leaf-coloured pixels
MIN_SUBJECT = 0.02  # of the frame
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


def assess(photo: Image.Image) -> PhotoQuality:
    """Every check on one decoded RGB photo."""
    width, height = photo.size
    short, long = min(width, height), max(width, height)
    # the statistics look at the centre, at most 3:1 (a 4000 x 20 strip is judged on its middle)
    keep_w, keep_h = min(width, MAX_ASPECT * height), min(height, MAX_ASPECT * width)
    box = (round((width - keep_w) / 2), round((height - keep_h) / 2), round((width + keep_w) / 2),
           round((height + keep_h) / 2))
    # an integer box-average to WORK_SIDE-2x WORK_SIDE on the short side (never enlarged). Colour and exposure
    # statistics do not depend on the scale, so they are read from every other pixel of it; only the sharpness
    # needs one fixed scale, and only the luma is resized to it (a 1024 x 768 phone photo in about 4 ms)
    factor = max(1, int(min(box[2] - box[0], box[3] - box[1]) // WORK_SIDE))
    photo = photo if photo.mode in ("RGB", "L") else photo.convert("RGB")  # reduce() refuses P, 1 and I;16
    reduced = photo.reduce(factor, box=box)
    levels = np.bincount(np.asarray(reduced.convert("L"))[::2, ::2].ravel(), minlength=256)
    mean = float(levels @ np.arange(256) / levels.sum())
    highlights = float(level_at_share(levels, 0.999))
    rgb = np.asarray(reduced.convert("RGB"))[::2, ::2].astype(np.float32)
    colour = colourfulness(rgb)
    subject = subject_exposure(rgb)
    scale = min(1.0, WORK_SIDE / short)
    size = (max(1, round(keep_w * scale)), max(1, round(keep_h * scale)))
    luma = np.asarray(reduced.convert("F").resize(size, Image.BILINEAR))  # F: Pillow's luma weights, unrounded
    sharpness = float(laplacian(luma).var())
    return PhotoQuality((
        QualityCheck("colour", colour >= MIN_COLOURFULNESS, {"colourfulness": round(colour, 2)},
                     f"colourfulness >= {MIN_COLOURFULNESS:g}"),
        QualityCheck("too_dark", mean >= DARK_MEAN or highlights >= DARK_HIGHLIGHTS,
                     {"mean_luma": round(mean, 1), "highlights_luma": round(highlights, 1)},
                     f"mean_luma >= {DARK_MEAN:g} or highlights_luma >= {DARK_HIGHLIGHTS:g}"),
        QualityCheck("blown_out", _exposed_well(subject), {k: round(v, 4) for k, v in subject.items()},
                     f"subject_share >= {MIN_SUBJECT:g} and subject_mean_luma <= {BRIGHT_MEAN:g} and "
                     f"(subject_clipped_share <= {MAX_CLIPPED:g} or subject_mean_luma <= {CLIPPED_MEAN:g}) and "
                     f"leaf_mean_luma <= {LEAF_BRIGHT_MEAN:g}"),
        QualityCheck("sharpness", sharpness >= MIN_SHARPNESS, {"laplacian_variance": round(sharpness, 2)},
                     f"laplacian_variance >= {MIN_SHARPNESS:g}"),
        QualityCheck("too_small", short >= MIN_SIDE, {"short_side_px": short}, f"short_side_px >= {MIN_SIDE}"),
        QualityCheck("strip", long / short <= MAX_ASPECT, {"aspect_ratio": round(long / short, 2)},
                     f"aspect_ratio <= {MAX_ASPECT:g}"),
    ))


def subject_exposure(rgb: np.ndarray) -> dict[str, float]:
    """Exposure of what the photo shows, its white backdrop left out: the subject's share of the frame, its mean
    luma and share of pixels at 240 or more, and the mean luma of its leaf-coloured pixels (0 when it has none)."""
    low, high = rgb.min(-1), rgb.max(-1)
    subject = ~((low >= BACKDROP_MIN) & (high - low <= BACKDROP_SPREAD))
    luma = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    # green the largest channel, or yellow to brown (red >= green > blue, green at least 40 % of red)
    leafy = (high - low >= 20) & (((green >= red) & (green >= blue)) | ((red >= green) & (green > blue)
                                                                       & (5 * green >= 2 * red)))
    seen = luma[subject]
    return {"subject_share": float(subject.mean()),
            "subject_mean_luma": float(seen.mean()) if seen.size else 255.0,
            "subject_clipped_share": float((seen >= 240).mean()) if seen.size else 1.0,
            "leaf_mean_luma": float(luma[leafy].mean()) if leafy.any() else 0.0}


def _exposed_well(subject: dict[str, float]) -> bool:
    return (subject["subject_share"] >= MIN_SUBJECT and subject["subject_mean_luma"] <= BRIGHT_MEAN
            and (subject["subject_clipped_share"] <= MAX_CLIPPED or subject["subject_mean_luma"] <= CLIPPED_MEAN)
            and subject["leaf_mean_luma"] <= LEAF_BRIGHT_MEAN)


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
