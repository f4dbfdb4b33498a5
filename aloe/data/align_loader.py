"""The alignment loader: webdataset shards -> shuffled, augmented float batches, exactly resumable.

Splitting. Per epoch the sorted shard list is shuffled with (seed, epoch); rank r takes
``shards[r::world_size]`` and splits them over ``streams`` logical streams (``aloe.data.streams``):
stream s reads ``rank_shards[s::streams]``. Every shard therefore belongs to exactly one (rank,
stream) pair: no duplicates, no gaps. The stream count is fixed by the data (``min(streams,
rank's shards)``, default 8), never by ``num_workers``: DataLoader workers only run streams, and
the main process puts their batches back into stream order. Workers beyond the stream count
would idle, so ``num_workers`` is capped at it. A rank with no shard at all is an error
(``len(shards) < world_size``), raised when the loader is built. Ranks can receive different
numbers of samples (whole shards are split), so a DDP trainer must handle uneven ends (e.g.
``torch.distributed.algorithms.Join``) if it wants every sample exactly once per epoch.

Determinism. Each stream reads its shards in order, each shard's samples sorted by key (not in
stored order, which img2dataset leaves to download timing; see ``aloe.data.tario``), through
webdataset's shuffle buffer driven by ``random.Random((seed, epoch, rank, stream))``;
augmentation is seeded per sample from (seed, epoch, key) (see ``aloe.data.augment``); batches
are built inside the stream and delivered in round-robin stream order; what each stream has
left at its end (less than a batch) is put together in stream order into the epoch's last
batches, so an epoch has at most one partial batch, as with a single stream. The batch stream is
thus a function of (shards, seed, epoch, rank, world_size, streams) only: not of timing and not
of the number of workers (0, 1, 2, ... give the same batches).

Resume. ``state_dict()`` after any batch records, per stream, how many full batches it delivered
and how many raw samples it had consumed from its shuffled stream by then, which stream is due
next and how many of the epoch's last (leftover) batches were delivered; ``iterate(epoch,
resume_state)`` makes each stream skip exactly those raw samples (undecoded, cheap) and continue,
so the remaining batches equal those of the uninterrupted epoch, with any number of workers (a
stream that had ended reads only its leftover again). Resuming needs the same seed, rank,
world_size and stream count (checked). Damage counts (``skipped``) accumulate over ``iterate``
calls and count each sample once.

Output. ``pixels`` are contiguous float32 (N, 3, H, W) in [0, 1] by default.
``pixels_dtype="uint8"`` returns the raw 0..255 values instead, as a channels-last (N, 3, H, W)
view (4x less to copy between processes and to the GPU; convert there with
``pixels.float().div_(255)``, and ``.contiguous()`` if a consumer needs it): on the CPU the
uint8-to-float pass costs about as much as decoding the image.

Damage. Corrupt images, samples a shard's index lists but its tar lacks or holds in part, and
samples without an image are skipped and recorded by (shard, key) in ``loader.skipped`` (a
``SkipCounter``, restricted to the keys file when one is given); streams send their records
with each batch (and in a final message), so nothing is lost across processes.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset

from aloe.data.augment import decode_image, random_resized_crop, sample_seed, stack_images, to_nchw
from aloe.data.streams import in_stream_order, joined_batches, run_streams
from aloe.data.subsets import read_keys
from aloe.data.tario import SkipCounter, image_extension, iter_shard, resolve_shards


@dataclasses.dataclass
class AlignmentBatch:
    pixels: torch.Tensor  # (N, 3, H, W) float32 in [0, 1] (uint8 0..255 with pixels_dtype="uint8")
    keys: list[str]
    labels: torch.Tensor | None = None  # (N,) int64 with label_key, else None


def epoch_shards(shards: Sequence[str], seed: int, epoch: int) -> list[str]:
    order = sorted(shards)
    random.Random(f"shards\0{seed}\0{epoch}").shuffle(order)
    return order


def stream_shards(
    shards: Sequence[str], seed: int, epoch: int, rank: int, world_size: int, stream: int, streams: int
) -> list[str]:
    return epoch_shards(shards, seed, epoch)[rank::world_size][stream::streams]


class _AlignmentStream(IterableDataset):
    """Runs inside each worker; yields dict messages (batch and/or skip-count deltas) of its streams."""

    def __init__(self, owner: "AlignmentLoader", epoch: int, positions: list[list[int]], first: int) -> None:
        super().__init__()
        self.o, self.epoch, self.positions, self.first = owner, epoch, positions, first

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return run_streams(self._stream, self.o.stream_count, self.first)

    def _stream(self, stream: int) -> Iterator[dict[str, Any]]:
        o = self.o
        shards = stream_shards(o.shards, o.seed, self.epoch, o.rank, o.world_size, stream, o.stream_count)
        counter = SkipCounter()
        batches_done, raw_done = self.positions[stream]

        require = (o.label_key,) if o.label_key else ()

        def raw_samples():
            for shard in shards:
                yield from iter_shard(shard, counter, keys=o.keys, require=require)

        rng = random.Random(f"buffer\0{o.seed}\0{self.epoch}\0{o.rank}\0{stream}")
        samples = wds.shuffle(o.shuffle_buffer, o.shuffle_initial, rng=rng)(raw_samples())
        images: list[torch.Tensor] = []
        keys: list[str] = []
        labels: list[int] = []
        raw = 0
        for sample in samples:
            raw += 1
            if raw <= raw_done:
                continue
            try:
                img = decode_image(sample[image_extension(sample)])
            except Exception:  # any decoder failure means a corrupt image: count, skip
                counter.add("corrupt_image", sample["__shard__"], sample["__key__"])
                continue
            try:
                label = int(sample[o.label_key]) if o.label_key else 0
            except ValueError:
                counter.add("corrupt_label", sample["__shard__"], sample["__key__"])
                continue
            seed = sample_seed(o.seed, self.epoch, sample["__key__"])
            images.append(random_resized_crop(img, o.image_size, seed, o.scale, o.ratio, o.hflip))
            keys.append(sample["__key__"])
            labels.append(label)
            if len(images) == o.batch_size:
                batches_done += 1
                yield self._message(images, keys, labels, [batches_done, raw], counter)
                images, keys, labels = [], [], []
        yield self._message(images, keys, labels, None, counter)  # the leftover (< one batch), the last counts

    @staticmethod
    def _message(images, keys, labels, position, counter) -> dict[str, Any]:
        pixels = stack_images(images) if images else None
        return {"pixels": pixels, "keys": list(keys), "labels": torch.tensor(labels, dtype=torch.int64),
                "position": position, "skipped": counter.pop()}


class AlignmentLoader:
    """``for batch in loader.iterate(epoch): batch.pixels, batch.keys``; see module docstring.

    ``shards``: a folder of ``*.tar`` shards, a brace pattern or a list of shard paths.
    ``label_key``: the member holding an integer label (e.g. ``cls``) for supervised training;
    batches then carry ``labels``, and samples without one count as damaged.
    """

    def __init__(
        self,
        shards: str | Path | Sequence[str | Path],
        *,
        image_size: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        num_workers: int = 0,
        streams: int = 8,
        shuffle_buffer: int = 1000,
        keys_file: str | Path | None = None,
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        hflip: bool = True,
        pin_memory: bool = False,
        pixels_dtype: str = "float32",
        label_key: str | None = None,
    ) -> None:
        self.shards = resolve_shards(shards)
        self.label_key = label_key
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world_size {world_size}")
        if len(self.shards) < world_size:
            raise ValueError(
                f"{len(self.shards)} shards cannot feed {world_size} ranks: every rank needs at "
                "least one shard (write more, smaller shards: samples_per_shard)"
            )
        if batch_size < 1 or image_size < 1 or streams < 1:
            raise ValueError(f"batch_size, image_size and streams must be positive, got {batch_size}, "
                             f"{image_size}, {streams}")
        self.image_size, self.batch_size, self.seed = image_size, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.stream_count = min(streams, len(self.shards[rank::world_size]))
        self.num_workers = min(num_workers, self.stream_count)
        self.shuffle_buffer = max(shuffle_buffer, 1)
        self.shuffle_initial = min(100, self.shuffle_buffer)
        self.keys = frozenset(read_keys(keys_file)) if keys_file is not None else None
        self.scale, self.ratio, self.hflip, self.pin_memory = tuple(scale), tuple(ratio), hflip, pin_memory
        if pixels_dtype not in ("float32", "uint8"):
            raise ValueError(f"pixels_dtype must be 'float32' or 'uint8', got {pixels_dtype!r}")
        self.pixels_dtype = pixels_dtype
        self.skipped = SkipCounter()
        self._epoch = 0
        self._start_epoch(None)

    def _start_epoch(self, state: dict[str, Any] | None) -> None:
        state = state or {"positions": [[0, 0]] * self.stream_count, "next_stream": 0, "tail_done": 0}
        self._positions = [list(p) for p in state["positions"]]
        due = state["next_stream"]
        self._next_stream, self._tail_done = (None if due is None else int(due)), int(state["tail_done"])

    def state_dict(self) -> dict[str, Any]:
        """Position after the last batch yielded; pass to ``iterate(..., resume_state=...)``."""
        return {"epoch": self._epoch, "seed": self.seed, "rank": self.rank, "world_size": self.world_size,
                "streams": self.stream_count, "positions": [list(p) for p in self._positions],
                "next_stream": self._next_stream, "tail_done": self._tail_done}

    def _check_resume(self, epoch: int, state: dict[str, Any]) -> None:
        expected = {"epoch": epoch, "seed": self.seed, "rank": self.rank,
                    "world_size": self.world_size, "streams": self.stream_count}
        wrong = {k: (state.get(k), v) for k, v in expected.items() if state.get(k) != v}
        if wrong:
            raise ValueError(f"cannot resume this loader from that state; (saved, now) differ: {wrong}")

    def iterate(self, epoch: int, resume_state: dict[str, Any] | None = None) -> Iterator[AlignmentBatch]:
        if resume_state is not None:
            self._check_resume(epoch, resume_state)
        self._epoch = epoch
        self._start_epoch(resume_state)
        if self._next_stream is None:  # the saved epoch had ended
            return
        loader = DataLoader(
            _AlignmentStream(self, epoch, [list(p) for p in self._positions], self._next_stream),
            batch_size=None,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            prefetch_factor=4 if self.num_workers else None,
        )
        leftovers: dict[int, dict[str, Any]] = {}
        for message, _ in in_stream_order(loader, self.stream_count, self._next_stream):
            if message["end"]:
                continue
            self.skipped.merge(message["skipped"])
            stream = message["stream"]
            if message["position"] is None:
                if message["pixels"] is not None:
                    leftovers[stream] = message
                continue
            self._positions[stream] = list(message["position"])
            self._next_stream = (stream + 1) % self.stream_count
            yield self._batch(message["pixels"], message["keys"], message["labels"])
        yield from self._tail([leftovers[s] for s in sorted(leftovers)])
        self._next_stream = None

    def _tail(self, leftovers: list[dict[str, Any]]) -> Iterator[AlignmentBatch]:
        """The streams' leftovers, in stream order, as full batches and one last partial batch."""
        parts = [([m["pixels"], m["labels"]], m["keys"]) for m in leftovers]
        for i, ((pixels, labels), keys) in enumerate(joined_batches(parts, self.batch_size)):
            if i < self._tail_done:
                continue
            self._tail_done = i + 1
            yield self._batch(pixels, keys, labels)

    def _batch(self, pixels: torch.Tensor, keys: list[str], labels: torch.Tensor) -> AlignmentBatch:
        return AlignmentBatch(pixels=to_nchw(pixels, self.pixels_dtype), keys=keys,
                              labels=labels if self.label_key else None)
