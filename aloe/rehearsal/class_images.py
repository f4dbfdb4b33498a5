"""Class-dependent images for the rehearsal datasets, deterministic given (seed, dataset, label).

A class's look is a shape, a background texture and an object colour: shape = ``SHAPES[label
% 6]``, texture = ``TEXTURES[(label // 6) % 6]`` (36 shape/texture pairs) and a colour drawn
from the class's own stream, so even 1000 classes differ and a linear probe on features of a
few images per class beats chance. Position, size, rotation and the texture's colours and scale
vary per image. Random streams are keyed by a CRC-32 of the dataset name (and split), so two
datasets or splits never share images.
"""

from __future__ import annotations

import zlib
from typing import NamedTuple

import numpy as np

from aloe.data.synthetic_images import SHAPES, TEXTURES, draw_shape, sample_rng, texture_image

BACKGROUND_CONTRAST = 0.5  # the texture is blended halfway to mid grey so the object stands out


class ClassLook(NamedTuple):
    shape: str
    texture: str
    colour: tuple[float, float, float]


def name_stream(*parts: str) -> int:
    """A stable stream id for a name (``hash`` is salted per process; CRC-32 is not)."""
    return zlib.crc32("/".join(parts).encode())


def class_look(seed: int, dataset: str, label: int) -> ClassLook:
    rng = np.random.default_rng([seed, name_stream(dataset, "class"), int(label)])
    colour = tuple(float(v) for v in rng.uniform(0, 255, size=3))
    return ClassLook(SHAPES[label % len(SHAPES)], TEXTURES[(label // len(SHAPES)) % len(TEXTURES)], colour)


def class_image(seed: int, dataset: str, split: str, index: int, label: int, size: int) -> np.ndarray:
    """Image ``index`` of ``split`` (of class ``label``): (size, size, 3) uint8."""
    look = class_look(seed, dataset, label)
    stream = name_stream(dataset, split)
    pattern = texture_image(seed, stream, 2 * index, look.texture, size).astype(np.float64)
    canvas = BACKGROUND_CONTRAST * pattern + (1 - BACKGROUND_CONTRAST) * 128.0
    img = draw_shape(sample_rng(seed, stream, 2 * index + 1), canvas, look.colour, look.shape)
    return np.round(np.clip(img, 0, 255)).astype(np.uint8)
