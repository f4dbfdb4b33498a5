"""Logical streams: a loader's output that does not depend on how many DataLoader workers run it.

A loader splits its work into ``count`` logical streams, a number fixed by the data (never by
``num_workers``). Stream ``s`` is a generator of plain-dict messages (a batch, skip counts, ...).
DataLoader worker ``p`` of ``P`` runs the streams ``s`` with ``s % P == p``, one message of each in
turn (``run_streams``); the main process puts the messages back into round-robin stream order
(``in_stream_order``). The result is the same message sequence for 0, 1, 2, ... workers, so the
same batches (hence the same floating-point sums) however a machine is configured; workers beyond
``count`` stay idle.

Both sides visit the live streams in the same cyclic order, starting at stream ``first`` (a
resumed epoch starts at the stream that was due next), and a stream that ends takes its turn with
an end marker and leaves the rotation. Each worker's own order is therefore the main order
restricted to its streams, which bounds what the main process has to hold back to about one
message per worker (plus DataLoader's prefetch).
"""

from __future__ import annotations

import collections
from typing import Any, Callable, Iterable, Iterator

import torch
from torch.utils.data import get_worker_info


def rotation(count: int, first: int = 0, ended: Iterable[int] = ()) -> list[int]:
    """The streams in turn order: ``first``, ``first + 1``, ... cyclically, without ``ended``."""
    gone = set(ended)
    return [s for s in ((first + i) % count for i in range(count)) if s not in gone]


def run_streams(
    make: Callable[[int], Iterator[dict[str, Any]]], count: int, first: int = 0, ended: Iterable[int] = ()
) -> Iterator[dict[str, Any]]:
    """In a DataLoader worker (or the main process when ``num_workers=0``): this worker's streams,
    interleaved one message at a time, each message tagged ``stream`` and ``index``; a stream's
    end is a message ``{"stream": s, "index": i, "end": True}``."""
    info = get_worker_info()
    worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
    live = collections.deque((s, make(s), 0) for s in rotation(count, first, ended) if s % workers == worker)
    while live:
        stream, messages, index = live.popleft()
        message = next(messages, None)
        if message is None:
            yield {"stream": stream, "index": index, "end": True}
            continue
        yield {**message, "stream": stream, "index": index, "end": False}
        live.append((stream, messages, index + 1))


def in_stream_order(
    messages: Iterable[dict[str, Any]], count: int, first: int = 0, ended: Iterable[int] = ()
) -> Iterator[tuple[dict[str, Any], int | None]]:
    """Main process: ``(message, stream due next)`` in round-robin stream order, end markers
    included (so a caller can record that a stream ended); ``None`` once every stream ended."""
    order = collections.deque(rotation(count, first, ended))
    expected = dict.fromkeys(order, 0)
    held: dict[tuple[int, int], dict[str, Any]] = {}
    source = iter(messages)
    while order:
        stream = order[0]
        want = (stream, expected[stream])
        while want not in held:
            try:
                message = next(source)
            except StopIteration:
                raise RuntimeError(f"the loader's workers stopped before stream {stream} ended") from None
            held[(message["stream"], message["index"])] = message
        message = held.pop(want)
        expected[stream] += 1
        if message["end"]:
            order.popleft()
        else:
            order.rotate(-1)
        yield message, (order[0] if order else None)


def joined_batches(parts: list[tuple[list[torch.Tensor], list[str]]], batch_size: int
                   ) -> Iterator[tuple[list[torch.Tensor], list[str]]]:
    """The streams' leftovers ``(columns, keys)``, in the order given, joined and cut into
    batches of ``batch_size`` (the last one may be partial)."""
    if not parts:
        return
    columns = [torch.cat(column) for column in zip(*(cols for cols, _ in parts))]
    keys = [k for _, part_keys in parts for k in part_keys]
    for start in range(0, len(keys), batch_size):
        yield [c[start : start + batch_size] for c in columns], keys[start : start + batch_size]


__all__ = ["in_stream_order", "joined_batches", "rotation", "run_streams"]
