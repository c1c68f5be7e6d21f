"""Procedural backgrounds for scenes no installable photo shows well: soil, mulch, sky, walls, greenhouse
frames, hands and foliage.

Each is a few numpy/Pillow operations on fractal noise, cheap enough to draw fresh for every training view, and
a function of its random generator alone, so the field-proxy set is the same on every machine. They stand for
the statistics of those surfaces (colour, texture scale, edges), not for their look in detail.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

Size = tuple[int, int]


def fractal_noise(rng: np.random.Generator, size: Size, octaves: int = 5, persistence: float = 0.55) -> np.ndarray:
    """Sum of bilinearly upsampled random grids (value noise), scaled to [0, 1]; shape (height, width)."""
    width, height = size
    total = np.zeros((height, width), np.float32)
    amplitude = 1.0
    for octave in range(octaves):
        cells = 2 ** (octave + 2)
        grid = Image.fromarray(rng.random((cells, cells), dtype=np.float32))
        total += amplitude * np.asarray(grid.resize(size, Image.BILINEAR))
        amplitude *= persistence
    return (total - total.min()) / max(float(np.ptp(total)), 1e-6)


def _tint(noise: np.ndarray, dark: np.ndarray, light: np.ndarray) -> Image.Image:
    pixels = dark[None, None] + noise[..., None] * (light - dark)[None, None]
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _jitter(rng: np.random.Generator, colour: tuple[int, int, int], spread: float = 20) -> np.ndarray:
    """A colour near `colour`: mostly brighter or darker, with a little hue drift (`spread` in 8-bit steps)."""
    brightness = 1 + rng.normal(0, spread / 128)
    return np.clip(np.asarray(colour, np.float32) * brightness + rng.normal(0, spread / 4, 3), 0, 255)


def soil(rng: np.random.Generator, size: Size) -> Image.Image:
    """Brown to grey-brown earth with pebbles and dark clods."""
    image = _tint(fractal_noise(rng, size, 6, 0.65), _jitter(rng, (60, 42, 28)), _jitter(rng, (150, 115, 80)))
    draw = ImageDraw.Draw(image)
    for _ in range(rng.integers(20, 120)):
        x, y, r = rng.integers(0, size[0]), rng.integers(0, size[1]), rng.integers(1, max(3, size[0] // 40))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(v) for v in _jitter(rng, (120, 105, 90), 40)))
    return image.filter(ImageFilter.GaussianBlur(0.7))


def mulch(rng: np.random.Generator, size: Size) -> Image.Image:
    """Straw or wood chips: many short strokes in straw, bark and grey tones over dark earth."""
    image = soil(rng, size)
    draw = ImageDraw.Draw(image)
    base = [(190, 160, 90), (120, 80, 45), (150, 140, 120), (90, 60, 35)]
    for _ in range(rng.integers(150, 500)):
        x, y = rng.integers(0, size[0]), rng.integers(0, size[1])
        angle, length = rng.uniform(0, np.pi), rng.integers(size[0] // 30 + 2, size[0] // 6 + 3)
        colour = tuple(int(v) for v in _jitter(rng, base[rng.integers(len(base))], 25))
        draw.line((x, y, x + length * np.cos(angle), y + length * np.sin(angle)), fill=colour,
                  width=int(rng.integers(1, 4)))
    return image


def sky(rng: np.random.Generator, size: Size) -> Image.Image:
    """Blue gradient with clouds, or overcast grey."""
    width, height = size
    ramp = np.linspace(0, 1, height, dtype=np.float32)[:, None] * np.ones((1, width), np.float32)
    top, bottom = (_jitter(rng, (70, 120, 200)), _jitter(rng, (170, 200, 235))) if rng.random() < 0.7 else \
        (_jitter(rng, (150, 155, 165)), _jitter(rng, (210, 212, 215)))
    base = np.asarray(_tint(ramp, top, bottom), np.float32)
    clouds = np.clip((fractal_noise(rng, size, 5, 0.6) - rng.uniform(0.4, 0.7)) * 3, 0, 1)[..., None]
    return Image.fromarray((base * (1 - clouds) + 245 * clouds).astype(np.uint8))


def wall(rng: np.random.Generator, size: Size) -> Image.Image:
    """Brick courses with mortar, or plain plaster/concrete."""
    width, height = size
    plaster = _tint(fractal_noise(rng, size, 6, 0.5), _jitter(rng, (150, 145, 135), 30),
                    _jitter(rng, (210, 205, 195), 30))
    if rng.random() < 0.4:
        return plaster
    draw = ImageDraw.Draw(plaster)
    brick_h = int(rng.integers(height // 14 + 4, height // 5 + 6))
    brick_w = brick_h * int(rng.integers(2, 4))
    red = _jitter(rng, (150, 70, 50), 25)
    for row, y in enumerate(range(0, height, brick_h)):
        for x in range(-(row % 2) * brick_w // 2, width, brick_w):
            colour = tuple(int(v) for v in np.clip(red + rng.normal(0, 15, 3), 0, 255))
            draw.rectangle((x + 2, y + 2, x + brick_w - 2, y + brick_h - 2), fill=colour)
    return plaster.filter(ImageFilter.GaussianBlur(0.6))


def greenhouse(rng: np.random.Generator, size: Size) -> Image.Image:
    """Bright diffuse plastic or glass crossed by dark or white frame bars."""
    image = sky(rng, size).filter(ImageFilter.GaussianBlur(6))
    image = Image.blend(image, Image.new("RGB", size, (235, 238, 235)), float(rng.uniform(0.3, 0.7)))
    draw = ImageDraw.Draw(image)
    colour = (40, 45, 45) if rng.random() < 0.5 else (245, 245, 245)
    step, bar = int(rng.integers(size[0] // 5 + 4, size[0] // 2 + 5)), int(rng.integers(2, max(4, size[0] // 30)))
    slant = rng.uniform(-0.3, 0.3) * size[1]
    for x in range(int(rng.integers(0, step)), size[0] + step, step):
        draw.line((x, 0, x + slant, size[1]), fill=colour, width=bar)
    for y in range(int(rng.integers(0, step)), size[1], int(step * rng.uniform(0.8, 1.6))):
        draw.line((0, y, size[0], y + rng.uniform(-0.1, 0.1) * size[1]), fill=colour, width=bar)
    return image


SKIN_TONES = ((255, 219, 172), (241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36), (92, 58, 33))


def hand(rng: np.random.Generator, size: Size) -> Image.Image:
    """An open palm with fingers in a skin tone, softly shaded, over soil or foliage."""
    image = (soil if rng.random() < 0.5 else foliage)(rng, size).filter(ImageFilter.GaussianBlur(4))
    width, height = size
    skin = tuple(int(v) for v in _jitter(rng, SKIN_TONES[rng.integers(len(SKIN_TONES))], 12))
    layer = Image.new("L", size, 0)
    draw = ImageDraw.Draw(layer)
    cx, cy, r = width * rng.uniform(0.3, 0.7), height * rng.uniform(0.4, 0.8), width * rng.uniform(0.25, 0.45)
    draw.ellipse((cx - r, cy - r * 0.8, cx + r, cy + r * 1.2), fill=255)
    for k in range(4):
        angle = -np.pi / 2 + (k - 1.5) * 0.3 + rng.uniform(-0.1, 0.1)
        fx, fy = cx + r * 1.5 * np.cos(angle), cy + r * 1.5 * np.sin(angle)
        draw.line((cx, cy, fx, fy), fill=255, width=int(r * 0.38))
        draw.ellipse((fx - r * 0.19, fy - r * 0.19, fx + r * 0.19, fy + r * 0.19), fill=255)
    shade = fractal_noise(rng, size, 3, 0.5)[..., None] * 0.35 + 0.75
    skin_layer = Image.fromarray(np.clip(np.asarray(Image.new("RGB", size, skin), np.float32) * shade, 0, 255)
                                 .astype(np.uint8))
    image.paste(skin_layer, mask=layer.filter(ImageFilter.GaussianBlur(2)))
    return image


def foliage(rng: np.random.Generator, size: Size) -> Image.Image:
    """Out-of-focus canopy: many leaf-shaped ellipses in greens and yellow-greens over a dark green ground."""
    width, height = size
    image = _tint(fractal_noise(rng, size, 4, 0.5), _jitter(rng, (20, 45, 15), 10), _jitter(rng, (70, 110, 40)))
    draw = ImageDraw.Draw(image)
    for _ in range(rng.integers(40, 160)):
        x, y = rng.integers(0, width), rng.integers(0, height)
        a, b = rng.integers(width // 30 + 2, width // 7 + 3), rng.integers(height // 60 + 1, height // 14 + 2)
        green = tuple(int(v) for v in _jitter(rng, (60 + rng.integers(0, 80), 110 + rng.integers(0, 70), 40), 15))
        draw.ellipse((x - a, y - b, x + a, y + b), fill=green)
    return image.filter(ImageFilter.GaussianBlur(float(rng.uniform(1, 5))))


TEXTURES: dict[str, Callable[[np.random.Generator, Size], Image.Image]] = {
    "soil": soil, "mulch": mulch, "sky": sky, "wall": wall, "greenhouse": greenhouse, "hand": hand,
    "foliage": foliage,
}
