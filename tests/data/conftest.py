"""Fixtures for the data tests: one tiny synthetic world per session and small shard sets."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import pytest

from aloe.data.shards import encode_png, write_split
from aloe.data.synthetic_images import shape_image, shape_classes
from aloe.data.synthetic_world import SYNTHETIC_PRESETS, make_synthetic_world

TINY = {**SYNTHETIC_PRESETS["tiny"], "seed": 7}


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    make_synthetic_world(root, **TINY)
    return root


@pytest.fixture(scope="session")
def make_shard_set():
    return _make_shard_set


def _make_shard_set(root, sizes, image_size=20, seed=3):
    """A classification set whose split 'train' has one shard per entry of ``sizes``.

    Shards are written one split at a time (write_split names them 000000.tar...), then moved
    together with their indexes so their sizes differ. Returns (shard paths, all keys).
    """
    classes = shape_classes(4)
    shards, keys = [], []
    for s, n in enumerate(sizes):
        part = root / f"part{s}"
        samples = (
            {"png": encode_png(shape_image(seed, 100 + s, i, *classes[i % 4], image_size, image_size + 6)),
             "cls": str(i % 4).encode()}
            for i in range(n)
        )
        entry = write_split(part, f"s{s}", samples, samples_per_shard=n)
        shard = part / entry["shards"][0]
        target = root / f"{s:06d}.tar"
        shard.rename(target)
        shard.with_suffix(".parquet").rename(target.with_suffix(".parquet"))  # its index goes with it
        shards.append(str(target))
        keys += [f"s{s}_{i:08d}" for i in range(n)]
    return shards, keys
