"""Resumable webdataset batch streams for alignment.

Written here rather than on top of ``webdataset.WebDataset`` because resuming a run must put
every rank at the exact sample it had reached, and the augmentation of a sample must not depend
on which rank or step reads it (so a resumed or differently-sharded run sees the same crops).
Shards are read by ``aloe.data.tario.iter_shard``: each shard's samples in key order (not in
the order img2dataset happened to store them), damage recorded by key.

The stream interface the training loop uses (``ShardStream`` here, ``LoaderStream`` in
``aloe.align.loader_stream`` over the data stage's ``AlignmentLoader``): built with keyword
arguments (shards, rank, world_size, seed, batch_size, image_size, resume_state, crop_scale,
hflip, with_labels, keys_file, ...); iterating yields ``Batch`` es forever (epoch after epoch);
``state_dict()`` is the plain-data position after the last batch (what a checkpoint stores and
``resume_state`` takes back); ``stats`` is a ``SkipCounter`` (``aloe.data.damage``): the
distinct damaged samples of the shards this rank has opened, and their sizes.

``ShardStream``: single process, reads labels (``cls``) for the supervised baseline. Each epoch
shuffles the shard list with ``seed + epoch`` and gives rank r the shards ``perm[r::world_size]``
(no duplicates across ranks); each shard's samples are read in key order. Each sample's crop and
flip come from a generator seeded by (seed, epoch, shard, key). Its state is (epoch, samples of
the split consumed in this rank's share). Damaged samples (undecodable image, missing image or
label, lost to a truncated tar) are skipped and recorded by (shard, key) in ``stats``.
"""

from __future__ import annotations

import io
import os
import random
import zlib
from typing import Iterator, NamedTuple, Sequence

import torch
import torchvision.transforms.v2 as T
import torchvision.transforms.v2.functional as TF
from braceexpand import braceexpand
from PIL import Image

from aloe.data.damage import SkipCounter
from aloe.data.tario import iter_shard

IMAGE_KEYS = ("jpg", "jpeg", "png", "webp")


class Batch(NamedTuple):
    pixels: torch.Tensor  # (N, 3, H, W) float in [0, 1]
    labels: torch.Tensor | None  # (N,) int64 or None


def expand_shards(shards: Sequence[str] | str, key: str = "shards") -> list[str]:
    """Brace-expand the shard list of config key ``key``; fail clearly if empty or unreadable."""
    if isinstance(shards, str):
        shards = [shards]
    out = [s for spec in shards for s in braceexpand(str(spec))]
    if not out:
        raise ValueError(f"config key '{key}': the shard list is empty")
    for s in out:
        if "://" in s or s.startswith("pipe:"):
            raise ValueError(f"config key '{key}': shard {s} is not a local file; samples are read in key order "
                             "through the tar's headers, which needs a local (seekable) copy")
        if not os.path.isfile(s) or not os.access(s, os.R_OK):
            raise FileNotFoundError(f"config key '{key}': shard {s} does not exist or is not readable")
    return out


def read_key_set(keys_file: str | None) -> frozenset[str] | None:
    """The sample keys listed in ``keys_file`` (one per line; a subset or split file), or None."""
    if keys_file is None:
        return None
    if not os.path.isfile(keys_file):
        raise FileNotFoundError(f"keys file {keys_file} does not exist")
    with open(keys_file) as f:
        return frozenset(line.strip() for line in f if line.strip())


def decode_image(sample: dict) -> Image.Image:
    for k in IMAGE_KEYS:
        if k in sample:
            img = Image.open(io.BytesIO(sample[k]))
            img.load()
            return img.convert("RGB")
    raise KeyError(f"no image entry (one of {IMAGE_KEYS}); keys: {sorted(k for k in sample if not k.startswith('__'))}")


def _sample_seed(seed: int, epoch: int, shard: str, key: str) -> int:
    return zlib.crc32(f"{seed}:{epoch}:{os.path.basename(shard)}:{key}".encode())


class ShardStream:
    """Infinite, resumable stream of augmented ``Batch`` es over this rank's shards."""

    def __init__(
        self,
        shards: Sequence[str],
        *,
        rank: int,
        world_size: int,
        seed: int,
        batch_size: int,
        image_size: int,
        resume_state: dict | None = None,
        crop_scale: tuple[float, float] = (0.08, 1.0),
        hflip: bool = True,
        with_labels: bool = False,
        keys_file: str | None = None,
        label_key: str = "cls",
        **_loader_options,
    ):
        self.shards = expand_shards(shards)
        if len(self.shards) < world_size:
            raise ValueError(
                f"config key 'shards': {len(self.shards)} shards cannot be split over {world_size} ranks "
                "without duplicates; write more (smaller) shards"
            )
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.batch_size, self.with_labels, self.label_key = batch_size, with_labels, label_key
        state = resume_state or {"epoch": 0, "index": 0}
        self.epoch, self.index = int(state["epoch"]), int(state["index"])
        self.keys = read_key_set(keys_file)
        self.stats = SkipCounter()
        crop = T.RandomResizedCrop(image_size, scale=tuple(crop_scale), antialias=True)
        self.augment = T.Compose([crop, T.RandomHorizontalFlip(0.5 if hflip else 0.0)])

    def state_dict(self) -> dict:
        """Epoch and raw samples of this rank's share consumed in it, after the last batch."""
        return {"epoch": self.epoch, "index": self.index}

    def rank_shards(self, epoch: int) -> list[str]:
        perm = list(self.shards)
        random.Random(self.seed + epoch).shuffle(perm)
        return perm[self.rank :: self.world_size]

    def _transform(self, img: Image.Image, shard: str, key: str) -> torch.Tensor:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_sample_seed(self.seed, self.epoch, shard, key))
            img = self.augment(img)
        return TF.to_dtype(TF.pil_to_tensor(img), torch.float32, scale=True)

    def __iter__(self) -> Iterator[Batch]:
        pixels, labels = [], []
        while True:
            raw = 0
            for shard in self.rank_shards(self.epoch):
                for sample in iter_shard(shard, self.stats, keys=self.keys):
                    raw += 1
                    if raw <= self.index:
                        continue  # resuming: already consumed before the checkpoint
                    self.index = raw
                    try:
                        x = self._transform(decode_image(sample), shard, sample["__key__"])
                        y = int(sample[self.label_key]) if self.with_labels else None
                    except Exception:  # noqa: BLE001 - any undecodable sample is skipped and counted
                        self.stats.add("corrupt_sample", sample["__shard__"], sample["__key__"])
                        continue
                    pixels.append(x)
                    labels.append(y)
                    if len(pixels) == self.batch_size:
                        yield Batch(torch.stack(pixels), torch.tensor(labels) if self.with_labels else None)
                        pixels, labels = [], []
            if raw == 0:
                raise RuntimeError(f"rank {self.rank}: shards {self.rank_shards(self.epoch)} hold no readable samples; "
                                   + self.stats.summary("damaged"))
            self.epoch, self.index = self.epoch + 1, 0


def heldout_batches(
    shards: Sequence[str],
    *,
    rank: int,
    world_size: int,
    batch_size: int,
    image_size: int,
    max_samples: int | None = None,
    stats: SkipCounter | None = None,
    with_labels: bool = False,
    keys_file: str | None = None,
    label_key: str = "cls",
) -> Iterator[Batch]:
    """Held-out batches without augmentation (resize to image_size); sample i goes to rank i % world_size.

    With ``keys_file`` only the listed samples count (e.g. the data stage's validation keys).
    Damaged samples are recorded in ``stats`` by (shard, key), each shard's in full when it is opened."""
    keys = read_key_set(keys_file)
    stats = stats if stats is not None else SkipCounter()
    resize = T.Resize((image_size, image_size), antialias=True)
    pixels, labels, i = [], [], -1
    for shard in expand_shards(shards, "heldout_shards"):
        for sample in iter_shard(shard, stats, keys=keys):
            i += 1
            if max_samples is not None and i >= max_samples:
                break
            if i % world_size != rank:
                continue
            try:
                img = resize(decode_image(sample))
                y = int(sample[label_key]) if with_labels else None
            except Exception:  # noqa: BLE001
                stats.add("corrupt_sample", sample["__shard__"], sample["__key__"])
                continue
            pixels.append(TF.to_dtype(TF.pil_to_tensor(img), torch.float32, scale=True))
            labels.append(y)
            if len(pixels) == batch_size:
                yield Batch(torch.stack(pixels), torch.tensor(labels) if with_labels else None)
                pixels, labels = [], []
        if max_samples is not None and i >= max_samples:
            break
    if pixels:
        yield Batch(torch.stack(pixels), torch.tensor(labels) if with_labels else None)
