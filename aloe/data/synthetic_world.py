"""The embedded synthetic world: what the pipeline downloads and evaluates on without internet.

``make_synthetic_world(out_dir, seed=..., ...)`` writes, deterministically from ``seed``::

    out_dir/caption_set/images/*.png        unlabelled image-caption set ("a photo of a red star"),
                                             drawn from every image kind below (``CAPTION_KINDS``)
    out_dir/caption_set/broken/*            non-image bytes and empty files (failure accounting)
    out_dir/caption_set/manifest.parquet    path, caption, kind (ok | missing | not_image | empty)
    out_dir/shapes/   out_dir/textures/   out_dir/digits/     classification, common format
    out_dir/depth/                                           dense (depth + normals), common format
    out_dir/world.json                       written last: sizes and expected download counts

"missing" manifest entries point at files that do not exist (HTTP 404). URLs are made only when
the caption set is served (the loopback port is chosen at run time), by
``download_synthetic_alignment_set``, which runs the real img2dataset path over 127.0.0.1.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
from sklearn.datasets import load_digits

from aloe.data.img2dataset_stage import download_alignment_set
from aloe.data.loopback import LoopbackServer
from aloe.data.shards import encode_npy, encode_png, write_meta, write_split
from aloe.data.synthetic_depth import render_scene
from aloe.data.synthetic_images import (
    DIGIT_NAMES, TEXTURES, digit_image, sample_rng, shape_class_name, shape_classes,
    shape_image, texture_image,
)
from aloe.io import atomic_dir, atomic_path, read_json, write_json

# Random streams: one per component, so changing one size never changes another component.
CAPTIONS, SHAPES_TRAIN, SHAPES_TEST, TEXTURES_TRAIN, TEXTURES_TEST = 1, 2, 3, 4, 5
DEPTH_TRAIN, DEPTH_TEST, DIGITS_SPLIT = 6, 7, 8
CAPTION_TEMPLATES = ("a photo of a {}", "a {} on a plain background", "an image of a {}")
BROKEN_KINDS = ("missing", "not_image", "empty")
CAPTION_KINDS = ("shape", "texture", "digit", "scene")  # drawn uniformly

SYNTHETIC_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(image_size=32, num_classes=4, caption_images=40, train_per_class=10,
                 test_per_class=5, digits_train=100, digits_test=50, depth_train=16,
                 depth_test=8, broken_per_kind=1, samples_per_shard=64),
    "demo": dict(image_size=64, num_classes=8, caption_images=3000, train_per_class=150,
                 test_per_class=50, digits_train=None, digits_test=None, depth_train=400,
                 depth_test=100, broken_per_kind=3, samples_per_shard=500),
}


def caption_sample(seed: int, stream: int, index: int, classes: list[tuple[str, str]], image_size: int,
                   max_aspect: float) -> tuple[np.ndarray, str]:
    """Image ``index`` of a caption set and its caption. The set covers every image kind the world
    evaluates on (``CAPTION_KINDS``: coloured shapes, textures, digit-like images, sphere scenes),
    as web-scale alignment sets cover what the paper evaluates on; a student aligned on shapes only
    never sees a texture or a digit. The draws come from a stream separate from the image's own and
    from every evaluation split's: digits are the training split's, at a random scale and place."""
    rng = sample_rng(seed, stream, 10**9 + index)
    kind = CAPTION_KINDS[int(rng.integers(len(CAPTION_KINDS)))]
    template = CAPTION_TEMPLATES[int(rng.integers(len(CAPTION_TEMPLATES)))]
    if kind == "shape":
        colour, shape = classes[int(rng.integers(len(classes)))]
        width = int(round(image_size * rng.uniform(1.0, max_aspect)))
        return (shape_image(seed, stream, index, colour, shape, image_size, width),
                template.format(shape_class_name(colour, shape)))
    if kind == "texture":
        texture = TEXTURES[int(rng.integers(len(TEXTURES)))]
        return texture_image(seed, stream, index, texture, image_size), template.format(texture)
    if kind == "digit":
        images, labels = _digits_split(seed)["train"]
        i = int(rng.integers(len(labels)))
        side = int(round(image_size * rng.uniform(0.7, 1.0)))
        canvas = np.zeros((image_size, image_size, 3), dtype=np.uint8)
        y, x = (int(rng.integers(image_size - side + 1)) for _ in range(2))
        canvas[y:y + side, x:x + side] = digit_image(images[i], side)
        return canvas, template.format(f"handwritten {DIGIT_NAMES[labels[i]]}")
    return render_scene(seed, stream, index, image_size)[0], template.format("sphere on a floor")


@functools.lru_cache(maxsize=4)
def _digits_split(seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The digits' train / test split (8x8 images, labels): 25 % of a seeded permutation is test."""
    digits = load_digits()
    order = np.random.default_rng([seed, DIGITS_SPLIT]).permutation(len(digits.target))
    n_test = len(order) // 4
    test, train = order[:n_test], order[n_test:]
    return {"train": (digits.images[train], digits.target[train]), "test": (digits.images[test], digits.target[test])}


def _write_caption_set(
    root: Path, *, seed: int, image_size: int, classes: list[tuple[str, str]],
    caption_images: int, broken_per_kind: int,
) -> dict[str, int]:
    with atomic_dir(root / "caption_set") as tmp:
        (tmp / "images").mkdir()
        (tmp / "broken").mkdir()
        rows = []
        for i in range(caption_images):
            img, caption = caption_sample(seed, CAPTIONS, i, classes, image_size, max_aspect=1.4)
            path = f"images/{i:06d}.png"
            (tmp / path).write_bytes(encode_png(img))
            rows.append({"path": path, "caption": caption, "kind": "ok"})
        for j in range(broken_per_kind):
            (tmp / f"broken/not_image_{j}.jpg").write_bytes(b"this is not an image\n" * 20)
            (tmp / f"broken/empty_{j}.jpg").write_bytes(b"")
            rows.append({"path": f"missing/{j}.jpg", "caption": "a photo of nothing", "kind": "missing"})
            rows.append({"path": f"broken/not_image_{j}.jpg", "caption": "a photo of text", "kind": "not_image"})
            rows.append({"path": f"broken/empty_{j}.jpg", "caption": "a photo of a void", "kind": "empty"})
        order = np.random.default_rng([seed, CAPTIONS]).permutation(len(rows))
        frame = pd.DataFrame([rows[k] for k in order])
        frame.to_parquet(tmp / "manifest.parquet", index=False)
    return {kind: int((frame["kind"] == kind).sum()) for kind in ("ok", *BROKEN_KINDS)}


def _classification_samples(images_and_labels: Iterator[tuple[np.ndarray, int]]):
    for img, label in images_and_labels:
        yield {"png": encode_png(img), "cls": str(label).encode()}


def _write_shapes(root: Path, seed: int, size: int, classes, per_class: dict[str, int], spc: int):
    names = [shape_class_name(c, s) for c, s in classes]
    splits = {}
    for split, stream in (("train", SHAPES_TRAIN), ("test", SHAPES_TEST)):
        n = per_class[split] * len(classes)
        gen = ((shape_image(seed, stream, i, *classes[i % len(classes)], size, size), i % len(classes))
               for i in range(n))
        splits[split] = write_split(root / "shapes", split, _classification_samples(gen), samples_per_shard=spc)
    write_meta(root / "shapes", name="shapes", task="classification", splits=splits, class_names=names,
               source="synthetic", notes="coloured shapes on low-saturation gradient backgrounds")


def _write_textures(root: Path, seed: int, size: int, per_class: dict[str, int], spc: int):
    k = len(TEXTURES)
    splits = {}
    for split, stream in (("train", TEXTURES_TRAIN), ("test", TEXTURES_TEST)):
        gen = ((texture_image(seed, stream, i, TEXTURES[i % k], size), i % k)
               for i in range(per_class[split] * k))
        splits[split] = write_split(root / "textures", split, _classification_samples(gen), samples_per_shard=spc)
    write_meta(root / "textures", name="textures", task="classification", splits=splits,
               class_names=list(TEXTURES), source="synthetic", notes="two-colour full-frame patterns")


def _write_digits(root: Path, seed: int, size: int, n_train: int | None, n_test: int | None, spc: int):
    split = _digits_split(seed)
    splits = {}
    for name, n in (("train", n_train), ("test", n_test)):
        images, labels = (a[:n] for a in split[name])
        gen = ((digit_image(img, size), int(label)) for img, label in zip(images, labels))
        splits[name] = write_split(root / "digits", name, _classification_samples(gen), samples_per_shard=spc)
    write_meta(root / "digits", name="digits", task="classification", splits=splits,
               class_names=list(DIGIT_NAMES), source="sklearn.datasets.load_digits (UCI optical digits)",
               notes="8x8 handwritten digits upscaled bicubically; 25% of a seeded permutation is test")


def _write_depth(root: Path, seed: int, size: int, counts: dict[str, int], spc: int):
    def gen(stream: int, n: int):
        for i in range(n):
            rgb, depth, normal = render_scene(seed, stream, i, size)
            yield {"png": encode_png(rgb), "depth.npy": encode_npy(depth), "normal.npy": encode_npy(normal)}

    splits = {split: write_split(root / "depth", split, gen(stream, counts[split]), samples_per_shard=spc)
              for split, stream in (("train", DEPTH_TRAIN), ("test", DEPTH_TEST))}
    write_meta(root / "depth", name="depth", task="dense", splits=splits, source="synthetic",
               notes="ray-cast spheres on a floor before a wall; exact depth (m) and normals")


def make_synthetic_world(
    out_dir: str | os.PathLike,
    *,
    seed: int,
    image_size: int,
    num_classes: int,
    caption_images: int,
    train_per_class: int,
    test_per_class: int,
    digits_train: int | None,
    digits_test: int | None,
    depth_train: int,
    depth_test: int,
    broken_per_kind: int,
    samples_per_shard: int,
) -> dict[str, Any]:
    """Generate the whole world into ``out_dir``; returns (and writes last) ``world.json``."""
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    (root / "world.json").unlink(missing_ok=True)
    classes = shape_classes(num_classes)
    counts = _write_caption_set(root, seed=seed, image_size=image_size, classes=classes,
                                caption_images=caption_images, broken_per_kind=broken_per_kind)
    per_class = {"train": train_per_class, "test": test_per_class}
    _write_shapes(root, seed, image_size, classes, per_class, samples_per_shard)
    _write_textures(root, seed, image_size, per_class, samples_per_shard)
    _write_digits(root, seed, image_size, digits_train, digits_test, samples_per_shard)
    _write_depth(root, seed, image_size, {"train": depth_train, "test": depth_test}, samples_per_shard)
    world = {
        "seed": seed,
        "image_size": image_size,
        "caption_set": {"manifest": "caption_set/manifest.parquet", "counts": counts},
        "classification": ["shapes", "textures", "digits"],
        "dense": ["depth"],
    }
    write_json(root / "world.json", world)
    return world


def write_url_list(world_dir: str | os.PathLike, base_url: str, out_path: str | os.PathLike) -> Path:
    """Turn the caption-set manifest into an img2dataset url list (parquet: url, caption)."""
    manifest = pd.read_parquet(Path(world_dir) / "caption_set" / "manifest.parquet")
    frame = pd.DataFrame({"url": [f"{base_url}/{p}" for p in manifest["path"]],
                          "caption": manifest["caption"]})
    with atomic_path(out_path, suffix=".parquet") as tmp:
        frame.to_parquet(tmp, index=False)
    return Path(out_path)


def download_synthetic_alignment_set(
    world_dir: str | os.PathLike, out_dir: str | os.PathLike, **download_options: Any
) -> dict[str, Any]:
    """Serve the world's caption set on 127.0.0.1 and run ``download_alignment_set`` on it.

    ``download_options`` are the keyword arguments of ``download_alignment_set``.
    """
    world_dir = Path(world_dir)
    read_json(world_dir / "world.json")  # fails clearly when the world is incomplete
    with tempfile.TemporaryDirectory(prefix="aloe-urls-") as tmp:
        with LoopbackServer(world_dir / "caption_set") as server:
            urls = write_url_list(world_dir, server.base_url, Path(tmp) / "urls.parquet")
            return download_alignment_set(urls, out_dir, **download_options)
