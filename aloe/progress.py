"""Progress of a long loop as plain log lines: rule logs are files, where carriage-return bars
(tqdm) pile up as one unreadable line.

A :class:`Progress` logs a line at every ``every`` share of its total (10 % by default) and
whenever ``interval_s`` has passed since its last line, e.g.
``align: 400/2000 steps (20 %), 12.3 steps/s, eta 2.2 min, loss 0.1234``.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

_log = logging.getLogger("aloe.progress")


def duration(seconds: float) -> str:
    """``0.4 s``, ``14 s``, ``3.2 min``, ``1.5 h``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def count(n: float) -> str:
    """``300``, ``12.5k``, ``1.2M``."""
    if n >= 1e6:
        return f"{n / 1e6:.3g}M"
    if n >= 1e4:
        return f"{n / 1e3:.3g}k"
    return f"{n:.0f}" if n >= 100 else f"{n:.3g}"


def _rate(per_s: float, unit: str) -> str:
    if per_s >= 1 or per_s == 0:
        return f"{count(per_s)} {unit}/s"
    return f"{1 / per_s:.3g} s per {unit.rstrip('s') or unit}"


class Progress:
    """Counts done units of ``total`` (None: unknown; lines then come every ``interval_s`` only).
    ``initial``: units done before this run (a resumed loop); the rate counts only this run's."""

    def __init__(self, what: str, total: int | None, *, unit: str = "it", initial: int = 0, every: float = 0.1,
                 interval_s: float = 60.0, logger: logging.Logger | None = None):
        self.what, self.total, self.unit, self.done = what, total, unit, int(initial)
        self.every, self.interval_s, self.log = every, interval_s, logger or _log
        self._initial, self._start = self.done, time.monotonic()
        self._last = self._start
        self._next = self._boundary_after(self.done)

    def _boundary_after(self, n: int) -> float:
        if not self.total:
            return math.inf
        step = max(1, math.ceil(self.total * self.every))
        return min(self.total, (n // step + 1) * step)

    def update(self, n: int = 1, **info: Any) -> None:
        """``n`` more units done; ``info`` (e.g. ``loss=0.12``) goes at the end of a line when one is due."""
        self.set(self.done + n, **info)

    def set(self, done: int, **info: Any) -> None:
        """``done`` units done in all."""
        self.done = int(done)
        if self.done < self._next:
            now = time.monotonic()
            if now - self._last < self.interval_s:
                return
        self.line(**info)

    def line(self, **info: Any) -> None:
        """Log the current state now."""
        now = time.monotonic()
        self._last = now
        self._next = self._boundary_after(self.done)
        elapsed = now - self._start
        per_s = (self.done - self._initial) / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.done}/{self.total} {self.unit} ({100 * self.done / self.total:.0f} %)" if self.total
                 else f"{self.done} {self.unit}", _rate(per_s, self.unit)]
        if self.total and per_s > 0 and self.done < self.total:
            parts.append(f"eta {duration((self.total - self.done) / per_s)}")
        parts += [f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in info.items()]
        self.log.info("%s: %s", self.what, ", ".join(parts))
