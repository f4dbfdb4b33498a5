"""Procedural 2D images for the embedded synthetic world: coloured shapes, textures, digits.

Each image is a pure function of (seed, stream, index) through its own numpy generator, so a
sample does not change when the dataset sizes change and two runs are bit-identical.
Shape classes combine a shape and a colour ("red triangle"); backgrounds are low-saturation
gradients with noise, so the object colour and outline identify the class and 2x2 GridPG grids
of distinct classes are unambiguous.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "star", "cross", "diamond")
COLOURS = {
    "red": (220, 30, 30),
    "green": (20, 160, 50),
    "blue": (30, 70, 225),
    "yellow": (240, 205, 20),
}
TEXTURES = (
    "horizontal stripes",
    "vertical stripes",
    "diagonal stripes",
    "checkerboard",
    "polka dots",
    "concentric rings",
)
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SUPERSAMPLE = 4


def sample_rng(seed: int, stream: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream, index])


def shape_classes(num_classes: int) -> list[tuple[str, str]]:
    """The first ``num_classes`` (colour, shape) pairs, cycling shapes fastest so that a small K
    already varies both shape and colour."""
    pairs = [
        (colour, SHAPES[(i + j) % len(SHAPES)])
        for i in range(len(SHAPES))
        for j, colour in enumerate(COLOURS)
    ]
    if not 2 <= num_classes <= len(pairs):
        raise ValueError(f"num_classes must be in [2, {len(pairs)}], got {num_classes}")
    return pairs[:num_classes]


def shape_class_name(colour: str, shape: str) -> str:
    return f"{colour} {shape}"


def background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Low-saturation two-colour gradient plus pixel noise, (H, W, 3) float in [0, 255]."""
    grey = rng.uniform(60, 200, size=2)
    tint = rng.uniform(-25, 25, size=(2, 3))
    c0, c1 = grey[0] + tint[0], grey[1] + tint[1]
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    t = (np.cos(angle) * xx / max(width - 1, 1) + np.sin(angle) * yy / max(height - 1, 1) + 1) / 2
    t = (t - t.min()) / max(t.max() - t.min(), 1e-9)
    img = c0[None, None, :] * (1 - t[..., None]) + c1[None, None, :] * t[..., None]
    img += rng.normal(0, rng.uniform(2, 12), size=img.shape)
    return np.clip(img, 0, 255)


def _polygon(shape: str, cx: float, cy: float, r: float, rot: float) -> list[tuple[float, float]]:
    if shape == "square":
        angles, radii = [rot + k * math.pi / 2 + math.pi / 4 for k in range(4)], [r] * 4
    elif shape == "diamond":
        angles, radii = [rot + k * math.pi / 2 for k in range(4)], [r, 0.65 * r] * 2
    elif shape == "triangle":
        angles, radii = [rot + k * 2 * math.pi / 3 - math.pi / 2 for k in range(3)], [r] * 3
    elif shape == "star":
        angles = [rot + k * math.pi / 5 - math.pi / 2 for k in range(10)]
        radii = [r if k % 2 == 0 else 0.42 * r for k in range(10)]
    elif shape == "cross":
        w = 0.33 * r
        pts = [(w, r), (w, w), (r, w), (r, -w), (w, -w), (w, -r),
               (-w, -r), (-w, -w), (-r, -w), (-r, w), (-w, w), (-w, r)]
        c, s = math.cos(rot), math.sin(rot)
        return [(cx + c * x - s * y, cy + s * x + c * y) for x, y in pts]
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return [(cx + rr * math.cos(a), cy + rr * math.sin(a)) for a, rr in zip(angles, radii)]


def draw_shape(
    rng: np.random.Generator, canvas: np.ndarray, colour: str | tuple[float, float, float], shape: str
) -> np.ndarray:
    """Draw one antialiased shape of random size, position and rotation onto ``canvas``.

    ``colour`` is a name of ``COLOURS`` or an RGB triple (0..255)."""
    height, width = canvas.shape[:2]
    side = min(height, width)
    r = rng.uniform(0.22, 0.36) * side
    cx = rng.uniform(r, width - r)
    cy = rng.uniform(r, height - r)
    rot = rng.uniform(0, 2 * math.pi)
    base = COLOURS[colour] if isinstance(colour, str) else colour
    shade = np.clip(np.array(base, dtype=np.float64) + rng.uniform(-15, 15, size=3), 0, 255)
    s = SUPERSAMPLE
    mask = Image.new("L", (width * s, height * s), 0)
    draw = ImageDraw.Draw(mask)
    if shape == "circle":
        draw.ellipse([(cx - r) * s, (cy - r) * s, (cx + r) * s, (cy + r) * s], fill=255)
    else:
        draw.polygon([(x * s, y * s) for x, y in _polygon(shape, cx, cy, r, rot)], fill=255)
    alpha = np.asarray(mask.resize((width, height), Image.Resampling.BOX), dtype=np.float64) / 255
    return canvas * (1 - alpha[..., None]) + shade[None, None, :] * alpha[..., None]


def shape_image(
    seed: int, stream: int, index: int, colour: str, shape: str, height: int, width: int
) -> np.ndarray:
    rng = sample_rng(seed, stream, index)
    img = draw_shape(rng, background(rng, height, width), colour, shape)
    return np.round(img).astype(np.uint8)


def texture_image(seed: int, stream: int, index: int, texture: str, size: int) -> np.ndarray:
    """A full-frame two-colour pattern of random scale, phase and colours."""
    rng = sample_rng(seed, stream, index)
    c0 = rng.uniform(0, 255, size=3)
    c1 = 255 - c0 + rng.uniform(-30, 30, size=3)
    period = rng.uniform(0.18, 0.35) * size
    phase = rng.uniform(0, period)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    if texture == "horizontal stripes":
        t = np.sin(2 * math.pi * (yy + phase) / period) > 0
    elif texture == "vertical stripes":
        t = np.sin(2 * math.pi * (xx + phase) / period) > 0
    elif texture == "diagonal stripes":
        t = np.sin(2 * math.pi * (xx + yy + phase) / (period * 1.4)) > 0
    elif texture == "checkerboard":
        t = (np.floor((xx + phase) / period) + np.floor((yy + phase) / period)) % 2 == 0
    elif texture == "polka dots":
        gx = ((xx + phase) % period) - period / 2
        gy = ((yy + phase) % period) - period / 2
        t = gx**2 + gy**2 < (0.3 * period) ** 2
    elif texture == "concentric rings":
        cx, cy = rng.uniform(0.3, 0.7, size=2) * size
        t = np.sin(2 * math.pi * (np.hypot(xx - cx, yy - cy) + phase) / period) > 0
    else:
        raise ValueError(f"unknown texture {texture!r}")
    img = np.where(t[..., None], c0, c1) + rng.normal(0, 6, size=(size, size, 3))
    return np.round(np.clip(img, 0, 255)).astype(np.uint8)


def digit_image(pixels8x8: np.ndarray, size: int) -> np.ndarray:
    """scikit-learn digits (8x8, values 0..16) upscaled bicubically to (size, size, 3) uint8."""
    grey = Image.fromarray(np.round(pixels8x8 * (255 / 16)).astype(np.uint8), mode="L")
    up = np.asarray(grey.resize((size, size), Image.Resampling.BICUBIC))
    return np.repeat(up[..., None], 3, axis=2)
