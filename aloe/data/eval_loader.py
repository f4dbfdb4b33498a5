"""Evaluation loaders over the common format (``aloe.data.shards``): ordered, no augmentation.

Every image is reduced to its largest centred square and resized to ``image_size`` (bilinear; depth
and normals with the same geometry, nearest-neighbour): ``transform="center_crop"``. With
``transform="resize"`` (classification only) the whole image is resized to ``image_size``, bicubic,
without a crop: SigLIP's evaluation view, which ``eval_transform`` picks for SigLIP-family
backbones. ``transform="resize_center_crop"`` (classification only) is DINOv2's view: the short
side resized to image_size * 256 / 224 (bicubic), then the centred crop. Shards are split across
ranks and logical streams like the alignment loader (``shards[rank::world_size][stream::streams]``,
without shuffling, ``aloe.data.streams``), each shard's samples sorted by key, and batches come
back in round-robin stream order, the streams' leftovers put together at the end (so at most one
batch is partial): the same batches in the same order for any number of workers, so cached features
do not depend on ``num_workers``. Batches carry the sample keys so cached features can always be
matched to samples. Damaged samples are skipped and counted by key in ``loader.skipped`` as in the
alignment loader (lost samples against each shard's index).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from aloe.data.augment import (
    center_crop_resize, center_crop_resize_nearest, decode_image, resize_short_center_crop, resize_whole,
    stack_images, to_nchw,
)
from aloe.data.shards import read_meta, split_shards
from aloe.data.streams import in_stream_order, joined_batches, run_streams
from aloe.data.tario import SkipCounter, image_extension, iter_shard


EVAL_TRANSFORMS = ("center_crop", "resize", "resize_center_crop")
# each view: uint8 (3, H, W) -> uint8 (S, S, 3); aloe.models.image_processor applies the same ones
VIEWS = {"center_crop": center_crop_resize, "resize": resize_whole, "resize_center_crop": resize_short_center_crop}
# config key evaluation.transform: a view of EVAL_TRANSFORMS for every backbone, or "auto"
TRANSFORM_CHOICES = ("auto", *EVAL_TRANSFORMS)


def eval_transform(family: str, task: str, choice: str = "auto") -> str:
    """The evaluation view of a backbone family on a dataset task ("classification" or "dense").

    ``choice`` is config key ``evaluation.transform``. "auto": SigLIP-family backbones (teachers
    and their students) see their own view, the whole image resized, on classification data
    (zero-shot, and the feature caches of the linear probe and k-NN); every other backbone the
    centred square. A named view applies to every backbone's classification data. The dense
    probes always keep one view, the centred square (Probe3D's NYUv2 centre crop), so that the
    targets and the metrics are the same for all backbones.
    """
    if choice not in TRANSFORM_CHOICES:
        raise ValueError(f"config key 'evaluation.transform': {choice!r} is not one of {TRANSFORM_CHOICES}")
    if task != "classification":
        return "center_crop"
    if choice == "auto":
        return "resize" if family == "siglip" else "center_crop"
    return choice


class EvalBatch(NamedTuple):
    pixels: torch.Tensor  # (N, 3, S, S) float32 in [0, 1]
    labels: torch.Tensor  # (N,) int64
    keys: list[str]


class DenseBatch(NamedTuple):
    pixels: torch.Tensor  # (N, 3, S, S) float32 in [0, 1]
    depth: torch.Tensor  # (N, S, S) float32 metres, 0 = invalid
    normal: torch.Tensor  # (N, 3, S, S) float32 unit vectors, 0 = invalid
    keys: list[str]


def _npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


class _EvalStream(IterableDataset):
    def __init__(
        self, shards: list[str], task: str, image_size: int, batch_size: int, streams: int, transform: str
    ) -> None:
        super().__init__()
        self.shards, self.task, self.size, self.batch_size = shards, task, image_size, batch_size
        self.streams, self.view = streams, VIEWS[transform]

    def _convert(self, sample: dict[str, Any]) -> tuple:
        img = decode_image(sample[image_extension(sample)])
        pixels = self.view(img, self.size)
        if self.task == "classification":
            return pixels, int(sample["cls"].decode())
        depth = _npy(sample["depth.npy"])
        normal = _npy(sample["normal.npy"])
        height, width = img.shape[1:]
        if depth.shape != (height, width) or normal.shape != (height, width, 3):
            raise ValueError("dense target shape does not match the image")
        return pixels, center_crop_resize_nearest(depth, self.size), center_crop_resize_nearest(normal, self.size)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return run_streams(self._stream, self.streams)

    def _stream(self, stream: int) -> Iterator[dict[str, Any]]:
        require = ("cls",) if self.task == "classification" else ("depth.npy", "normal.npy")
        counter = SkipCounter()
        rows: list[tuple] = []
        keys: list[str] = []
        for shard in self.shards[stream :: self.streams]:
            for sample in iter_shard(shard, counter, require=require):
                try:
                    rows.append(self._convert(sample))
                except Exception:  # corrupt image, label or target: count, skip
                    counter.add("corrupt_sample", sample["__shard__"], sample["__key__"])
                    continue
                keys.append(sample["__key__"])
                if len(rows) == self.batch_size:
                    yield self._message(rows, keys, counter, False)
                    rows, keys = [], []
        yield self._message(rows, keys, counter, True)  # the leftover (< one batch) and the last counts

    def _message(self, rows, keys, counter, leftover: bool) -> dict[str, Any]:
        if not rows:
            return {"columns": None, "keys": [], "skipped": counter.pop(), "leftover": leftover}
        columns = [stack_images([r[0] for r in rows])]
        if self.task == "classification":
            columns.append(torch.tensor([r[1] for r in rows], dtype=torch.int64))
        else:
            columns += [torch.from_numpy(np.stack([r[i] for r in rows])) for i in (1, 2)]
        return {"columns": columns, "keys": list(keys), "skipped": counter.pop(), "leftover": leftover}


class EvalLoader:
    """``for pixels, labels, keys in EvalLoader(dataset_dir, "test", image_size=64, batch_size=32)``.

    Dense datasets yield ``DenseBatch(pixels, depth, normal, keys)`` instead.
    """

    def __init__(
        self,
        dataset_dir: str | Path,
        split: str,
        *,
        image_size: int,
        batch_size: int,
        num_workers: int = 0,
        rank: int = 0,
        world_size: int = 1,
        streams: int = 8,
        transform: str = "center_crop",
    ) -> None:
        meta = read_meta(dataset_dir)
        self.task = meta["task"]
        if transform not in EVAL_TRANSFORMS:
            raise ValueError(f"eval transform must be one of {EVAL_TRANSFORMS}, got {transform!r}")
        if transform != "center_crop" and self.task != "classification":
            raise ValueError(f"eval transform {transform!r} is for classification data; {dataset_dir} is {self.task}")
        self.transform = transform
        self.class_names: list[str] | None = meta.get("class_names")
        self.num_samples = meta["splits"][split]["num_samples"] if split in meta["splits"] else 0
        self.shards = split_shards(dataset_dir, split)[rank::world_size]
        self.image_size, self.batch_size = image_size, batch_size
        self.streams = max(1, min(streams, len(self.shards)))
        self.num_workers = min(num_workers, self.streams)
        self.skipped = SkipCounter()

    def __iter__(self) -> Iterator[EvalBatch | DenseBatch]:
        stream = _EvalStream(self.shards, self.task, self.image_size, self.batch_size, self.streams, self.transform)
        loader = DataLoader(stream, batch_size=None, num_workers=self.num_workers)
        leftovers: dict[int, dict[str, Any]] = {}
        for message, _ in in_stream_order(loader, self.streams):
            if message["end"]:
                continue
            self.skipped.merge(message["skipped"])
            if message["columns"] is None:
                continue
            if message["leftover"]:
                leftovers[message["stream"]] = message
                continue
            yield self._batch(message["columns"], message["keys"])
        # the streams' leftovers, in stream order: full batches and at most one partial batch
        parts = [(leftovers[s]["columns"], leftovers[s]["keys"]) for s in sorted(leftovers)]
        for columns, keys in joined_batches(parts, self.batch_size):
            yield self._batch(columns, keys)

    def _batch(self, cols: list[torch.Tensor], keys: list[str]) -> EvalBatch | DenseBatch:
        if self.task == "classification":
            return EvalBatch(to_nchw(cols[0]), cols[1], keys)
        return DenseBatch(to_nchw(cols[0]), cols[1], cols[2].permute(0, 3, 1, 2).contiguous(), keys)
