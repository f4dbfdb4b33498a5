"""The alignment loader: webdataset shards -> shuffled, augmented float batches, exactly resumable.

Splitting. Per epoch the sorted shard list is shuffled with (seed, epoch); rank r takes
``shards[r::world_size]`` and its dataloader worker w takes ``rank_shards[w::num_workers]``.
Every shard therefore belongs to exactly one (rank, worker) pair: no duplicates, no gaps.
If a rank gets fewer shards than it has workers, the extra workers stay idle (throughput is
then bounded by the number of shards); a rank with no shard at all is an error
(``len(shards) < world_size``), raised when the loader is built. Ranks can receive different
numbers of samples (whole shards are split), so a DDP trainer must handle uneven ends (e.g.
``torch.distributed.algorithms.Join``) if it wants every sample exactly once per epoch.

Determinism. Each worker reads its shards in order, each shard's samples sorted by key (not in
stored order, which img2dataset leaves to download timing; see ``aloe.data.tario``), through
webdataset's shuffle buffer driven
by ``random.Random((seed, epoch, rank, worker))``; augmentation is seeded per sample from
(seed, epoch, key) (see ``aloe.data.augment``); batches are built inside the worker and torch's
DataLoader returns worker batches in fixed round-robin order. The batch stream is thus a
function of (shards, seed, epoch, rank, world_size, num_workers) only, not of timing.

Resume. ``state_dict()`` after any batch records, per worker, how many batches it delivered
and how many raw samples it consumed from its shuffled stream; ``iterate(epoch, resume_state)``
makes each worker skip exactly those raw samples (undecoded, cheap) and continue, so the
remaining batches equal those of the uninterrupted epoch (the round-robin also restarts at the
worker that was due next). Resuming needs the same seed, world_size and num_workers (checked).
Damage counts (``skipped``) accumulate over ``iterate`` calls and count each sample once.

Output. ``pixels`` are contiguous float32 (N, 3, H, W) in [0, 1] by default.
``pixels_dtype="uint8"`` returns the raw 0..255 values instead, as a channels-last (N, 3, H, W)
view (4x less to copy between processes and to the GPU; convert there with
``pixels.float().div_(255)``, and ``.contiguous()`` if a consumer needs it): on the CPU the
uint8-to-float pass costs about as much as decoding the image.

Damage. Corrupt images, samples a shard's index lists but its tar lacks or holds in part, and
samples without an image are skipped and recorded by (shard, key) in ``loader.skipped`` (a
``SkipCounter``, restricted to the keys file when one is given); workers send their records
with each batch (and in a final message), so nothing is lost across processes.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from aloe.data.augment import decode_image, random_resized_crop, sample_seed, stack_images, to_nchw
from aloe.data.subsets import read_keys
from aloe.data.tario import SkipCounter, image_extension, iter_shard, resolve_shards


@dataclasses.dataclass
class AlignmentBatch:
    pixels: torch.Tensor  # (N, 3, H, W) float32 in [0, 1] (uint8 0..255 with pixels_dtype="uint8")
    keys: list[str]


def epoch_shards(shards: Sequence[str], seed: int, epoch: int) -> list[str]:
    order = sorted(shards)
    random.Random(f"shards\0{seed}\0{epoch}").shuffle(order)
    return order


def worker_shards(
    shards: Sequence[str], seed: int, epoch: int, rank: int, world_size: int, worker: int, num_workers: int
) -> list[str]:
    return epoch_shards(shards, seed, epoch)[rank::world_size][worker::num_workers]


class _AlignmentStream(IterableDataset):
    """Runs inside each worker; yields dict messages (batch and/or skip-count deltas)."""

    def __init__(self, owner: "AlignmentLoader", epoch: int, resume: list[list[int]] | None, first: int) -> None:
        super().__init__()
        self.o, self.epoch, self.resume, self.first = owner, epoch, resume, first

    def __iter__(self) -> Iterator[dict[str, Any]]:
        o = self.o
        info = get_worker_info()
        # DataLoader worker 0 plays the logical worker due next, so a resumed epoch continues
        # the round-robin where the interrupted one stopped.
        worker = ((info.id if info is not None else 0) + self.first) % o.worker_count
        shards = worker_shards(o.shards, o.seed, self.epoch, o.rank, o.world_size, worker, o.worker_count)
        counter = SkipCounter()
        batches_done, raw_done = self.resume[worker] if self.resume else (0, 0)

        def raw_samples():
            for shard in shards:
                yield from iter_shard(shard, counter, keys=o.keys)

        rng = random.Random(f"buffer\0{o.seed}\0{self.epoch}\0{o.rank}\0{worker}")
        stream = wds.shuffle(o.shuffle_buffer, o.shuffle_initial, rng=rng)(raw_samples())
        images: list[torch.Tensor] = []
        keys: list[str] = []
        raw = 0
        for sample in stream:
            raw += 1
            if raw <= raw_done:
                continue
            try:
                img = decode_image(sample[image_extension(sample)])
            except Exception:  # any decoder failure means a corrupt image: count, skip
                counter.add("corrupt_image", sample["__shard__"], sample["__key__"])
                continue
            seed = sample_seed(o.seed, self.epoch, sample["__key__"])
            images.append(random_resized_crop(img, o.image_size, seed, o.scale, o.ratio, o.hflip))
            keys.append(sample["__key__"])
            if len(images) == o.batch_size:
                batches_done += 1
                yield self._message(worker, images, keys, batches_done, raw, counter)
                images, keys = [], []
        batches_done += bool(images)
        yield self._message(worker, images, keys, batches_done, raw, counter)  # the rest, and the last counts

    @staticmethod
    def _message(worker, images, keys, batches_done, raw, counter) -> dict[str, Any]:
        pixels = stack_images(images) if images else None
        return {"worker": worker, "pixels": pixels, "keys": list(keys),
                "position": [batches_done, raw], "skipped": counter.pop()}  # fmt: skip


class AlignmentLoader:
    """``for batch in loader.iterate(epoch): batch.pixels, batch.keys``; see module docstring.

    ``shards``: a folder of ``*.tar`` shards or a list of shard paths.
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
        shuffle_buffer: int = 1000,
        keys_file: str | Path | None = None,
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        hflip: bool = True,
        pin_memory: bool = False,
        pixels_dtype: str = "float32",
    ) -> None:
        self.shards = resolve_shards(shards)
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world_size {world_size}")
        if len(self.shards) < world_size:
            raise ValueError(
                f"{len(self.shards)} shards cannot feed {world_size} ranks: every rank needs at "
                "least one shard (write more, smaller shards: samples_per_shard)"
            )
        if batch_size < 1 or image_size < 1:
            raise ValueError(f"batch_size and image_size must be positive, got {batch_size}, {image_size}")
        self.image_size, self.batch_size, self.seed = image_size, batch_size, seed
        self.rank, self.world_size, self.num_workers = rank, world_size, num_workers
        self.worker_count = max(num_workers, 1)
        self.shuffle_buffer = max(shuffle_buffer, 1)
        self.shuffle_initial = min(100, self.shuffle_buffer)
        self.keys = frozenset(read_keys(keys_file)) if keys_file is not None else None
        self.scale, self.ratio, self.hflip, self.pin_memory = tuple(scale), tuple(ratio), hflip, pin_memory
        if pixels_dtype not in ("float32", "uint8"):
            raise ValueError(f"pixels_dtype must be 'float32' or 'uint8', got {pixels_dtype!r}")
        self.pixels_dtype = pixels_dtype
        self.skipped = SkipCounter()
        self._epoch = 0
        self._position = [[0, 0] for _ in range(self.worker_count)]
        self._next_worker = 0

    def state_dict(self) -> dict[str, Any]:
        """Position after the last batch yielded; pass to ``iterate(..., resume_state=...)``."""
        return {"epoch": self._epoch, "seed": self.seed, "rank": self.rank, "world_size": self.world_size,
                "num_workers": self.worker_count, "workers": [list(p) for p in self._position],
                "next_worker": self._next_worker}  # fmt: skip

    def _check_resume(self, epoch: int, state: dict[str, Any]) -> list[list[int]]:
        expected = {"epoch": epoch, "seed": self.seed, "rank": self.rank,
                    "world_size": self.world_size, "num_workers": self.worker_count}  # fmt: skip
        wrong = {k: (state.get(k), v) for k, v in expected.items() if state.get(k) != v}
        if wrong:
            raise ValueError(f"cannot resume this loader from that state; (saved, now) differ: {wrong}")
        return [list(p) for p in state["workers"]]

    def iterate(self, epoch: int, resume_state: dict[str, Any] | None = None) -> Iterator[AlignmentBatch]:
        resume = self._check_resume(epoch, resume_state) if resume_state is not None else None
        self._epoch = epoch
        self._position = resume or [[0, 0] for _ in range(self.worker_count)]
        self._next_worker = int(resume_state["next_worker"]) if resume_state is not None else 0
        loader = DataLoader(
            _AlignmentStream(self, epoch, resume, self._next_worker),
            batch_size=None,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            prefetch_factor=4 if self.num_workers else None,
        )
        for message in loader:
            self.skipped.merge(message["skipped"])
            if message["pixels"] is None:
                continue
            self._position[message["worker"]] = list(message["position"])
            self._next_worker = (message["worker"] + 1) % self.worker_count
            pixels = to_nchw(message["pixels"], self.pixels_dtype)
            yield AlignmentBatch(pixels=pixels, keys=message["keys"])
