"""Held-out batches of an alignment set: no augmentation, every image resized to a square.

Each shard's samples are read in key order (``aloe.data.tario``), shards in name order; sample i
of that sequence goes to rank ``i % world_size``, so ranks split the set without duplicates.
``max_samples`` caps the set before it is split. The view is the whole image resized to
(image_size, image_size), antialiased bilinear (``aloe.data.augment.resize_crop``), the same
resize the training crops use. Damaged samples are recorded in ``stats`` by (shard, key), each
shard's in full when it is opened; with ``label_key`` a sample without that member, or with a
label that is not an integer, counts as damaged too.
"""

from __future__ import annotations

import os
from typing import Iterator, Sequence

import torch

from aloe.data.align_loader import AlignmentBatch
from aloe.data.augment import decode_image, resize_crop, stack_images, to_nchw
from aloe.data.subsets import read_keys
from aloe.data.tario import SkipCounter, image_extension, iter_shard, resolve_shards


def heldout_batches(
    shards: str | os.PathLike | Sequence[str],
    *,
    rank: int,
    world_size: int,
    batch_size: int,
    image_size: int,
    max_samples: int | None = None,
    stats: SkipCounter | None = None,
    label_key: str | None = None,
    keys_file: str | os.PathLike | None = None,
) -> Iterator[AlignmentBatch]:
    """This rank's held-out batches (float32 (N, 3, S, S) in [0, 1], keys, labels or None)."""
    keys = frozenset(read_keys(keys_file)) if keys_file is not None else None
    stats = stats if stats is not None else SkipCounter()
    require = (label_key,) if label_key else ()
    images: list[torch.Tensor] = []
    names: list[str] = []
    labels: list[int] = []
    i = -1
    for shard in resolve_shards(shards, "heldout_shards"):
        for sample in iter_shard(shard, stats, keys=keys, require=require):
            i += 1
            if max_samples is not None and i >= max_samples:
                break
            if i % world_size != rank:
                continue
            try:
                img = decode_image(sample[image_extension(sample)])
                label = int(sample[label_key]) if label_key else 0
            except Exception:  # an undecodable image or label: count, skip
                stats.add("corrupt_sample", sample["__shard__"], sample["__key__"])
                continue
            images.append(resize_crop(img, 0, 0, img.shape[1], img.shape[2], image_size))
            names.append(sample["__key__"])
            labels.append(label)
            if len(images) == batch_size:
                yield _batch(images, names, labels, label_key)
                images, names, labels = [], [], []
        if max_samples is not None and i >= max_samples:
            break
    if images:
        yield _batch(images, names, labels, label_key)


def _batch(images, names, labels, label_key) -> AlignmentBatch:
    return AlignmentBatch(pixels=to_nchw(stack_images(images)), keys=list(names),
                          labels=torch.tensor(labels, dtype=torch.int64) if label_key else None)


__all__ = ["heldout_batches"]
