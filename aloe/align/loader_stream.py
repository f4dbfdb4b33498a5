"""The training stream: the data stage's ``AlignmentLoader``, epoch after epoch, resumable.

The loader runs one epoch per ``iterate`` call (fixed streams, DataLoader workers, a shuffle
buffer, exact resume); this adapter chains epochs forever, keeps (epoch, loader state) as its
own state (what a checkpoint stores and ``resume_state`` takes back) and exposes the loader's
damage record (a ``SkipCounter``, ``aloe.data.damage``) as ``stats``. An epoch's last, smaller
batch is not trained on (drop-last, so every optimiser step sees the configured batch); its
samples are counted in ``dropped_remainder``. ``label_key`` (the supervised baseline) makes
batches carry labels. Every objective, ALOE and the baselines, is thus fed and augmented by the
same code.
"""

from __future__ import annotations

from typing import Iterator, Sequence

from aloe.data.align_loader import AlignmentBatch, AlignmentLoader


class LoaderStream:
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
        label_key: str | None = None,
        keys_file: str | None = None,
        num_workers: int = 0,
        shuffle_buffer: int = 1000,
        pin_memory: bool = False,
    ):
        self.loader = AlignmentLoader(
            shards, image_size=image_size, batch_size=batch_size, seed=seed, rank=rank, world_size=world_size,
            num_workers=num_workers, shuffle_buffer=shuffle_buffer, keys_file=keys_file, scale=tuple(crop_scale),
            hflip=hflip, pin_memory=pin_memory, label_key=label_key,
        )
        self.batch_size = batch_size
        state = resume_state or {"epoch": 0, "loader": None}
        self.epoch, self._resume = int(state["epoch"]), state["loader"]
        self.stats = self.loader.skipped
        self.dropped_remainder = 0

    def state_dict(self) -> dict:
        loader_state = self.loader.state_dict() if self._resume is None else self._resume
        return {"epoch": self.epoch, "loader": loader_state}

    def __iter__(self) -> Iterator[AlignmentBatch]:
        while True:
            got_any = full = False
            resumed = self._resume is not None
            for batch in self.loader.iterate(self.epoch, resume_state=self._resume):
                self._resume = None  # from now on the loader's own state is current
                got_any = True
                if batch.pixels.shape[0] < self.batch_size:
                    self.dropped_remainder += batch.pixels.shape[0]
                    continue
                full = True
                yield batch
            if not got_any and not resumed:
                raise RuntimeError(f"rank {self.loader.rank}: epoch {self.epoch} yielded no samples from the shards; "
                                   + self.stats.summary("damaged"))
            if got_any and not full and not resumed:
                # every epoch would be one dropped remainder: training would wait forever
                raise RuntimeError(
                    f"rank {self.loader.rank}: an epoch of the training shards holds fewer samples than one "
                    f"micro-batch ({self.batch_size}; {self.dropped_remainder} dropped); use more data (a larger "
                    "fraction) or a smaller 'micro_batch'")
            self.epoch, self._resume = self.epoch + 1, None
