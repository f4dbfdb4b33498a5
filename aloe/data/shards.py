"""The one on-disk format for every prepared dataset (evaluation sets and the synthetic world).

Layout of a prepared dataset folder::

    <dataset_dir>/
      meta.json              written LAST and atomically: its presence marks the dataset complete
      <split>/000000.tar     webdataset shards (plain tar, reproducible headers: mtime 0)
      <split>/000000.parquet each shard's index (its keys, ``aloe.data.shard_index``): the
      <split>/000001.tar ... samples a damaged shard lost are counted by key

Each sample in a shard is a group of tar members sharing one key ``<split>_<index:08d>``:

- classification: ``<key>.png`` or ``<key>.jpg`` (RGB image) and ``<key>.cls`` (the integer
  label as ASCII text, 0-based index into ``class_names``);
- dense (depth + normals): ``<key>.png`` (RGB), ``<key>.depth.npy`` (float32 (H, W) metres,
  0 = invalid), ``<key>.normal.npy`` (float32 (H, W, 3) unit normals in camera coordinates,
  x right, y down, z forward, all-zero = invalid).

``meta.json``::

    {"name": str, "task": "classification" | "dense", "class_names": [str, ...] (classification),
     "splits": {"<split>": {"num_samples": int, "shards": ["<split>/000000.tar", ...]}},
     "source": str, "notes": str}

Shards make the format stream-friendly at ImageNet scale (sequential reads, no millions of small
files) and readable by the same loaders as the alignment shards written by img2dataset.
A split is first written to a hidden temporary folder and renamed into place when complete, so
an interrupted preparation never leaves a split that looks finished.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from PIL import Image

from aloe.data.shard_index import write_indexed_shards
from aloe.io import atomic_dir, read_json, write_json

META_FILE = "meta.json"
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")


def encode_png(image: Image.Image | np.ndarray) -> bytes:
    """Lossless, deterministic PNG bytes of an RGB image (PIL image or (H, W, 3) uint8 array)."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def encode_jpeg(image: Image.Image, quality: int = 95) -> bytes:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def encode_npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def sample_key(split: str, index: int) -> str:
    return f"{split}_{index:08d}"


def write_split(
    dataset_dir: str | os.PathLike,
    split: str,
    samples: Iterable[dict[str, bytes]],
    *,
    samples_per_shard: int = 1000,
) -> dict[str, Any]:
    """Write one split as shards; ``samples`` yields dicts {extension: bytes} (no ``__key__``).

    Keys are assigned here (``<split>_<index>``) so that every split is consistently named.
    Returns the split's entry for ``meta.json``.
    """
    dataset_dir = Path(dataset_dir)
    count = 0
    with atomic_dir(dataset_dir / split) as tmp_dir:

        def keyed():
            nonlocal count
            for sample in samples:
                yield {"__key__": sample_key(split, count), **sample}
                count += 1

        for _ in write_indexed_shards(tmp_dir, keyed(), samples_per_shard=samples_per_shard):
            pass
        if count == 0:
            raise ValueError(f"split {split!r} of {dataset_dir} has no samples")
    shards = sorted(p.name for p in (dataset_dir / split).glob("*.tar"))
    return {"num_samples": count, "shards": [f"{split}/{name}" for name in shards]}


def write_meta(
    dataset_dir: str | os.PathLike,
    *,
    name: str,
    task: str,
    splits: dict[str, dict[str, Any]],
    class_names: list[str] | None = None,
    source: str = "",
    notes: str = "",
) -> dict[str, Any]:
    if task not in ("classification", "dense"):
        raise ValueError(f"task must be 'classification' or 'dense', got {task!r}")
    if task == "classification" and not class_names:
        raise ValueError(f"classification dataset {name!r} needs class_names")
    meta = {"name": name, "task": task, "splits": splits, "source": source, "notes": notes}
    if class_names is not None:
        meta["class_names"] = list(class_names)
    write_json(Path(dataset_dir) / META_FILE, meta)
    return meta


def read_meta(dataset_dir: str | os.PathLike) -> dict[str, Any]:
    """Read ``meta.json``; a missing file means the dataset was never (completely) prepared."""
    path = Path(dataset_dir) / META_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: {dataset_dir} is not a prepared dataset (run its preparation stage)"
        )
    return read_json(path)


def split_shards(dataset_dir: str | os.PathLike, split: str) -> list[str]:
    """Absolute shard paths of one split, in order."""
    meta = read_meta(dataset_dir)
    if split not in meta["splits"]:
        raise KeyError(f"{dataset_dir} has no split {split!r}; available: {sorted(meta['splits'])}")
    return [str(Path(dataset_dir) / rel) for rel in meta["splits"][split]["shards"]]
