"""Damaged samples, each counted once by (shard, key), however often it is met.

A reader that opens a shard records how many samples of the split it holds (``expect``) and,
right away, every sample its index lists that the tar lacks or holds only in part; samples that
fail later (an undecodable image) are added as they are met. Because the record is a set of
(shard, key), a damaged sample met again in the next epoch, after a resume or by another worker
is still one sample, and counters of workers and ranks merge into the exact union.

``share`` is damaged / distinct samples of the shards opened so far; that is what the training
guard (config key ``max_corrupt_share``) compares against its threshold.
"""

from __future__ import annotations

import collections
import heapq
from typing import Any

FIRST_KEYS = 20  # damaged keys named in a record (as_dict); the counts are always complete


class SkipCounter:
    """Damaged samples {(shard, key): reason}, shard sizes {shard: samples} and shard-level notes
    {shard: {note}} (e.g. ``truncated_tar``, ``no_index``). Picklable; ``merge`` is a union."""

    def __init__(self) -> None:
        self.samples: dict[tuple[str, str], str] = {}
        self.sizes: dict[str, int] = {}
        self.notes: dict[str, set[str]] = {}

    # --- recording -------------------------------------------------------------------------
    def add(self, reason: str, shard: str, key: str) -> None:
        """Sample ``key`` of ``shard`` is damaged (the first reason recorded for it is kept)."""
        self.samples.setdefault((shard, key), reason)

    def expect(self, shard: str, n: int) -> None:
        """``shard`` holds ``n`` samples of the split being read (damaged ones included)."""
        self.sizes[shard] = max(n, self.sizes.get(shard, 0))

    def note(self, note: str, shard: str) -> None:
        self.notes.setdefault(shard, set()).add(note)

    def merge(self, other: "SkipCounter") -> None:
        for (shard, key), reason in other.samples.items():
            self.add(reason, shard, key)
        for shard, n in other.sizes.items():
            self.expect(shard, n)
        for shard, notes in other.notes.items():
            for note in notes:
                self.note(note, shard)

    def pop(self) -> "SkipCounter":
        """Everything recorded so far, as a new counter, and reset (a worker ships its news;
        the receiver's ``merge`` is a union, so nothing is counted twice)."""
        out = SkipCounter()
        out.samples, out.sizes, out.notes = self.samples, self.sizes, self.notes
        self.samples, self.sizes, self.notes = {}, {}, {}
        return out

    # --- reading ---------------------------------------------------------------------------
    @property
    def total(self) -> int:
        return len(self.samples)

    @property
    def n_samples(self) -> int:
        """Distinct samples of the shards opened so far (damaged ones included)."""
        return sum(self.sizes.values())

    @property
    def share(self) -> float:
        return self.total / max(1, self.n_samples)

    def as_dict(self, first: int = FIRST_KEYS) -> dict[str, Any]:
        """Plain data for records: totals, counts by reason and by shard, shard notes, and the
        first ``first`` damaged samples in (shard, key) order as [shard, key, reason], so that a
        person can find them."""
        by_reason: collections.Counter[str] = collections.Counter()
        by_shard: dict[str, collections.Counter[str]] = {}
        for (shard, _), reason in self.samples.items():
            by_reason[reason] += 1
            by_shard.setdefault(shard, collections.Counter())[reason] += 1
        return {
            "total": self.total,
            "samples": self.n_samples,
            "by_reason": dict(sorted(by_reason.items())),
            "by_shard": {s: dict(sorted(c.items())) for s, c in sorted(by_shard.items())},
            "shard_notes": {s: sorted(n) for s, n in sorted(self.notes.items())},
            "first_keys": [[s, k, r] for (s, k), r in heapq.nsmallest(first, self.samples.items())],
        }

    def state(self) -> dict[str, Any]:
        """JSON-ready full record (every damaged key), for checkpoints; ``from_state`` reads it back."""
        return {"samples": sorted([s, k, r] for (s, k), r in self.samples.items()),
                "sizes": dict(sorted(self.sizes.items())),
                "notes": {s: sorted(n) for s, n in sorted(self.notes.items())}}

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> "SkipCounter":
        out = cls()
        for shard, key, reason in (state or {}).get("samples", []):
            out.add(reason, shard, key)
        for shard, n in (state or {}).get("sizes", {}).items():
            out.expect(shard, int(n))
        for shard, notes in (state or {}).get("notes", {}).items():
            for note in notes:
                out.note(note, shard)
        return out

    def summary(self, what: str = "", limit: int = 10) -> str:
        """One line for logs and errors: 'N of M samples damaged (x %): shard: n (reason n, ...); ...'."""
        d = self.as_dict()
        shards = sorted(d["by_shard"].items(), key=lambda kv: -sum(kv[1].values()))
        parts = [f"{s}: {sum(c.values())} ({', '.join(f'{r} {n}' for r, n in c.items())})" for s, c in shards[:limit]]
        if len(shards) > limit:
            parts.append(f"... {len(shards) - limit} more shards")
        notes = [f"{s}: {', '.join(n)}" for s, n in d["shard_notes"].items()]
        text = f"{what + ': ' if what else ''}{d['total']} of {d['samples']} samples damaged ({100 * self.share:.2f} %)"
        if parts:
            text += "; " + "; ".join(parts)
        if notes:
            text += "; shard notes: " + "; ".join(notes[:limit])
        return text
