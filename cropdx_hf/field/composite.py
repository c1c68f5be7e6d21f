"""Field-style views of a lab photo: its leaf cut out and placed in a scene, then photographed badly.

One function, `compose`, makes a view from a photo, a background bank and a random generator. Training draws
a fresh generator state per view; the field-proxy set seeds it from the photo's hash, so the proxy is the
same on every machine. Every step follows something field photos have and lab photos lack: the leaf at
15-100 % of the frame and off-centre, any rotation, perspective, other leaves, hands and occluders, sun, shade
and colour casts, motion and defocus blur, sensor noise and JPEG quality 30-90.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps
from torchvision.transforms import functional as F

from cropdx_hf.field.backgrounds import BackgroundBank
from cropdx_hf.field.masks import LeafCutout, cut_out_leaf
from cropdx_hf.field.textures import SKIN_TONES, Size

CANVAS = 288  # short side of a view: above every release's 256-px resize, so no view is upsampled
ASPECTS = (1.0, 4 / 3, 3 / 4)
MID_GREY = 118.0  # 8-bit sRGB value of 18 % reflectance, what camera metering aims the average at


@dataclass(frozen=True)
class FieldStyle:
    """How far views stray from the lab photo; each probability is per view."""

    lab_share: float = 0.2  # views that keep the lab background (with the photometric steps): no lab regression
    leaf_fill: tuple[float, float] = (0.1, 1.0)  # leaf bounding box / frame area
    extra_leaves: float = 0.5
    perspective: float = 0.35  # torchvision's distortion scale
    shadow: float = 0.5
    occlusion: float = 0.25
    blur: float = 0.4
    defocus: tuple[float, float] = (0.5, 2.0)  # Gaussian radius at the 288-px canvas
    motion: tuple[int, int] = (3, 9)  # length of a motion streak, in canvas pixels
    exposure: tuple[float, float] = (0.55, 1.35)  # overall gain, from deep shade to sun
    auto_exposure: bool = False  # meter the scene first, as a phone does (exposure then varies around it)
    noise: float = 0.3
    jpeg_quality: tuple[int, int] = (30, 90)


def compose(photo: Image.Image, bank: BackgroundBank, rng: np.random.Generator,
            style: FieldStyle = FieldStyle()) -> Image.Image:
    """One field-style view of `photo`; a photo whose leaf cannot be cut out keeps its own background."""
    cutout = None if rng.random() < style.lab_share else cut_out_leaf(photo)
    if cutout is None:
        scene = _turned(photo.convert("RGB"), rng)
    else:
        aspect = ASPECTS[rng.integers(len(ASPECTS))]
        size = (CANVAS, round(CANVAS * aspect)) if aspect >= 1 else (round(CANVAS / aspect), CANVAS)
        scene = _scene(cutout, bank, rng, style, size)
    return _photographed(scene, rng, style)


def field_view(photo: Image.Image, bank: BackgroundBank, seed: int, style: FieldStyle = FieldStyle()) -> bytes:
    """The deterministic view of `photo` for `seed`, as the JPEG bytes a phone would send."""
    rng = np.random.default_rng(seed)
    return _as_sent(compose(photo, bank, rng, style), rng, style)


def snapshot(scene: Image.Image, rng: np.random.Generator, style: FieldStyle = FieldStyle()) -> bytes:
    """A real scene (a crop of any photo) taken with the views' light and camera, as JPEG bytes: photos that
    are compared with field-style views pass the same steps, so the camera alone tells them nothing."""
    return _as_sent(_photographed(scene.convert("RGB"), rng, style), rng, style)


def _as_sent(view: Image.Image, rng: np.random.Generator, style: FieldStyle) -> bytes:
    """The JPEG bytes a phone sends, at a random quality in the style's range."""
    return _jpeg_bytes(view, int(rng.integers(*style.jpeg_quality, endpoint=True)))


class FieldViews:
    """A torchvision-style transform: PIL photo in, field-style PIL view out (fresh randomness per call).

    Its generator follows torch's seed: each DataLoader worker of each pass gets its own seed from the main
    process, so repeated passes over a dataset (several cached views per photo) give different views, and a
    run seeded with `torch.manual_seed` gives the same views again."""

    def __init__(self, bank: BackgroundBank, style: FieldStyle = FieldStyle()):
        self.bank, self.style = bank, style
        self._seed: int | None = None
        self._rng = np.random.default_rng(0)

    def __call__(self, photo: Image.Image) -> Image.Image:
        if self._seed != torch.initial_seed():
            self._seed = torch.initial_seed()
            self._rng = np.random.default_rng(self._seed)
        view = compose(photo, self.bank, self._rng, self.style)
        quality = int(self._rng.integers(*self.style.jpeg_quality, endpoint=True))
        return Image.open(io.BytesIO(_jpeg_bytes(view, quality))).convert("RGB")

    def __repr__(self) -> str:
        return f"FieldViews({self.style}, backgrounds: {self.bank.fingerprint})"


def _scene(cutout: LeafCutout, bank: BackgroundBank, rng: np.random.Generator, style: FieldStyle,
           size: Size) -> Image.Image:
    canvas = bank.draw(rng, size)
    fill = rng.uniform(*style.leaf_fill)
    # shrink before posing: rotating and warping a 256-px cutout costs 4x a 128-px one, and most views show less
    base = _scaled(cutout.image, min(1.0, 1.5 * np.sqrt(fill * size[0] * size[1] / cutout.image.width
                                                          / cutout.image.height)))
    leaf = _posed(base, rng, style)
    scale = min(np.sqrt(fill * size[0] * size[1] / (leaf.width * leaf.height)),
                1.3 * min(size[0] / leaf.width, size[1] / leaf.height))
    for _ in range(int(rng.integers(1, 4)) if rng.random() < style.extra_leaves else 0):
        other = _posed(base, rng, style)
        other = _scaled(other, scale * rng.uniform(0.5, 1.0))
        other = ImageEnhance.Brightness(other).enhance(rng.uniform(0.6, 1.0))
        if rng.random() < 0.5:
            other = other.filter(ImageFilter.GaussianBlur(float(rng.uniform(1, 4))))
        canvas.paste(other, _position(other.size, size, rng), other)
    leaf = ImageEnhance.Brightness(_scaled(leaf, scale)).enhance(rng.uniform(0.8, 1.15))
    where = _position(leaf.size, size, rng)
    if rng.random() < style.shadow:
        _cast_shadow(canvas, leaf, where, rng)
    canvas.paste(leaf, where, leaf)
    if rng.random() < style.occlusion:
        _occlude(canvas, leaf.size, where, bank, rng)
    return canvas


def _turned(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A lab photo kept whole: flips and a right-angle turn (leaves come in every orientation)."""
    if rng.random() < 0.5:
        image = ImageOps.mirror(image)
    return image.rotate(90 * int(rng.integers(4)), expand=True)


def _posed(leaf: Image.Image, rng: np.random.Generator, style: FieldStyle) -> Image.Image:
    """Flipped, turned to any angle and seen at a slant; cropped again to what remains visible."""
    if rng.random() < 0.5:
        leaf = ImageOps.mirror(leaf)
    leaf = leaf.rotate(float(rng.uniform(0, 360)), Image.BILINEAR, expand=True)
    if style.perspective:
        leaf = F.perspective(leaf, *_slant(leaf.size, float(rng.uniform(0, style.perspective)), rng),
                             F.InterpolationMode.BILINEAR)
    box = leaf.getchannel("A").getbbox()
    return leaf.crop(box) if box else leaf


def _slant(size: Size, distortion: float, rng: np.random.Generator) -> tuple[list[list[int]], list[list[int]]]:
    """Corner moves of torchvision's RandomPerspective, drawn from `rng` (its own draws use torch's generator)."""
    width, height = size
    dx, dy = int(distortion * width / 2), int(distortion * height / 2)
    right, bottom = width - 1, height - 1
    start = [[0, 0], [right, 0], [right, bottom], [0, bottom]]
    moves = rng.integers(0, [dx + 1, dy + 1] * 4)
    end = [[moves[0], moves[1]], [right - moves[2], moves[3]], [right - moves[4], bottom - moves[5]],
           [moves[6], bottom - moves[7]]]
    return start, [[int(v) for v in corner] for corner in end]


def _scaled(leaf: Image.Image, scale: float) -> Image.Image:
    return leaf.resize((max(2, round(leaf.width * scale)), max(2, round(leaf.height * scale))), Image.BICUBIC)


def _position(leaf: Size, canvas: Size, rng: np.random.Generator) -> tuple[int, int]:
    """Top-left corner placing the leaf's centre anywhere that leaves at most ~15 % of it outside the frame."""
    corner = []
    for extent, room in zip(leaf, canvas, strict=True):
        low, high = -0.15 * extent, room - 0.85 * extent
        corner.append(int(rng.uniform(min(low, high), max(low, high))))
    return corner[0], corner[1]


def _cast_shadow(canvas: Image.Image, leaf: Image.Image, where: tuple[int, int], rng: np.random.Generator) -> None:
    offset = rng.normal(0, 0.06, 2) * min(canvas.size)
    shadow = leaf.getchannel("A").filter(ImageFilter.GaussianBlur(float(rng.uniform(2, 8))))
    darkness = float(rng.uniform(0.3, 0.6))
    shadow = shadow.point(lambda a: int(a * darkness))
    canvas.paste((0, 0, 0), (where[0] + int(offset[0]), where[1] + int(offset[1])), shadow)


def _occlude(canvas: Image.Image, leaf: Size, where: tuple[int, int], bank: BackgroundBank,
             rng: np.random.Generator) -> None:
    """Cover up to a quarter of the leaf: a finger, a twig, or a patch of the scene (another plant, a stake)."""
    width, height = leaf
    x, y = where[0] + rng.uniform(0, width), where[1] + rng.uniform(0, height)
    rx, ry = rng.uniform(0.1, 0.3) * width, rng.uniform(0.1, 0.3) * height
    mask = Image.new("L", canvas.size, 0)
    draw = ImageDraw.Draw(mask)
    kind = rng.random()
    if kind < 0.35:
        draw.line((x - rx * 3, y - ry * 3, x + rx * 3, y + ry * 3), fill=255, width=max(2, int(rx / 3)))
        fill = Image.new("RGB", canvas.size, tuple(int(v) for v in rng.uniform(30, 110, 3)))
    else:
        draw.ellipse((x - rx, y - ry, x + rx, y + ry), fill=255)
        skin = SKIN_TONES[rng.integers(len(SKIN_TONES))]
        fill = Image.new("RGB", canvas.size, skin) if kind < 0.7 else bank.draw(rng, canvas.size)
    canvas.paste(fill, (0, 0), mask.filter(ImageFilter.GaussianBlur(1.5)))


def _photographed(scene: Image.Image, rng: np.random.Generator, style: FieldStyle) -> Image.Image:
    """Light (sun, shade, casts, a gradient across the frame), then the camera (blur, noise)."""
    scene = ImageEnhance.Color(scene).enhance(rng.uniform(0.6, 1.4))
    scene = ImageEnhance.Contrast(scene).enhance(rng.uniform(0.7, 1.3))
    pixels = np.asarray(scene, np.float32)
    metered = MID_GREY / max(float(pixels.mean()), 1.0) if style.auto_exposure else 1.0
    gain = metered * rng.uniform(*style.exposure) * rng.normal(1, 0.07, 3)  # exposure and a colour cast
    height, width = pixels.shape[:2]
    if rng.random() < 0.5:  # light falling off across the frame
        angle, strength = rng.uniform(0, 2 * np.pi), rng.uniform(0, 0.4)
        ramp = np.cos(angle) * np.linspace(-1, 1, width)[None, :] + np.sin(angle) * np.linspace(-1, 1, height)[:, None]
        pixels = pixels * (1 + strength * ramp / 2)[..., None]
    pixels = pixels * gain
    if rng.random() < style.noise:
        pixels = pixels + rng.normal(0, rng.uniform(2, 8), pixels.shape)
    view = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    if rng.random() < style.blur:
        view = _blurred(view, rng, style)
    return view


def _blurred(view: Image.Image, rng: np.random.Generator, style: FieldStyle) -> Image.Image:
    if rng.random() < 0.5:  # defocus
        return view.filter(ImageFilter.GaussianBlur(float(rng.uniform(*style.defocus)) * min(view.size) / CANVAS))
    steps = int(rng.integers(*style.motion, endpoint=True))  # motion: the average of shifted copies along a line
    angle = rng.uniform(0, np.pi)
    pixels = np.asarray(view, np.float32)
    total = np.zeros_like(pixels)
    for k in range(steps):
        shift = k - steps // 2
        total += np.roll(pixels, (round(shift * np.sin(angle)), round(shift * np.cos(angle))), axis=(0, 1))
    return Image.fromarray((total / steps).astype(np.uint8))


def _jpeg_bytes(view: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    view.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()
