"""Training inputs for the demo teachers, drawn from the synthetic world's own image generators.

The teachers get their own random streams (``TEACHER_STREAMS``, disjoint from the world's 1..8), so
no evaluation or alignment image is ever a teacher training image, and each family sees a
different sample. Labelled data mixes the world's coloured-shape classes with its textures, so the
teachers learn both object and pattern features; caption pairs use the world's caption templates.
"""

from __future__ import annotations

import numpy as np

from aloe.data.synthetic_images import TEXTURES, shape_class_name, shape_classes, shape_image, texture_image
from aloe.data.synthetic_world import CAPTION_TEMPLATES

TEACHER_STREAMS = {"vit": 1001, "dinov3": 1002, "siglip": 1003}
HELD_OUT_STREAM = 1100  # for checking a teacher on images it never saw


def demo_class_names(num_shape_classes: int) -> list[str]:
    """The world's first ``num_shape_classes`` shape classes ("red circle", ...), then its textures."""
    return [shape_class_name(c, s) for c, s in shape_classes(num_shape_classes)] + list(TEXTURES)


def demo_labelled_images(
    *, seed: int, stream: int, num_images: int, image_size: int, num_shape_classes: int
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(images (N, S, S, 3) uint8, labels (N,) int64, class names); classes cycle, so they are balanced."""
    if num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}")
    shapes = shape_classes(num_shape_classes)
    names = demo_class_names(num_shape_classes)
    images = np.empty((num_images, image_size, image_size, 3), dtype=np.uint8)
    labels = np.arange(num_images, dtype=np.int64) % len(names)
    for i, label in enumerate(labels):
        if label < len(shapes):
            images[i] = shape_image(seed, stream, i, *shapes[label], image_size, image_size)
        else:
            images[i] = texture_image(seed, stream, i, TEXTURES[label - len(shapes)], image_size)
    return images, labels, names


def demo_caption_pairs(
    *, seed: int, stream: int, num_images: int, image_size: int, num_shape_classes: int
) -> tuple[np.ndarray, list[str], np.ndarray, list[str]]:
    """(images, captions, labels, class names): each image captioned with a random world template
    ("a photo of a red star", "an image of a checkerboard", ...)."""
    images, labels, names = demo_labelled_images(
        seed=seed, stream=stream, num_images=num_images, image_size=image_size, num_shape_classes=num_shape_classes
    )
    rng = np.random.default_rng([seed, stream, 0])
    templates = rng.integers(len(CAPTION_TEMPLATES), size=num_images)
    captions = [CAPTION_TEMPLATES[t].format(names[y]) for t, y in zip(templates, labels)]
    return images, captions, labels, names
