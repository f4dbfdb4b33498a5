"""Learning-rate schedules: linear warm-up, then cosine decay, as a LambdaLR factor.

``warmup_cosine`` is the curve; ``LrFactor`` is the alignment training's schedule built on it, a
picklable object checked against its config keys (so the scheduler state is plain data). The
dense probes use the curve directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SCHEDULES = ("cosine", "constant_cosine")


@dataclass
class LrFactor:
    """Multiplier of the base LR at optimiser step ``step`` (0-based).

    ``cosine``: linear warm-up over ``warmup_steps``, then cosine from 1 to ``min_factor`` at
    ``total_steps``. ``constant_cosine`` (the authors' code): warm-up, constant, then a cosine tail
    over the last ``tail_steps``.
    """

    total_steps: int
    warmup_steps: int = 0
    kind: str = "cosine"
    tail_steps: int = 0
    min_factor: float = 0.0

    def __post_init__(self):
        if self.kind not in SCHEDULES:
            raise ValueError(f"config key 'schedule': unknown schedule {self.kind!r}; choose one of {SCHEDULES}")
        if self.total_steps < 1 or not 0 <= self.warmup_steps <= self.total_steps:
            raise ValueError(
                f"config keys 'total_steps'={self.total_steps} / 'warmup_steps'={self.warmup_steps}: "
                "need 0 <= warmup_steps <= total_steps and total_steps >= 1"
            )
        if self.kind == "constant_cosine" and not 0 < self.tail_steps <= self.total_steps - self.warmup_steps:
            raise ValueError(
                f"config key 'tail_steps'={self.tail_steps} must be in 1..total_steps - warmup_steps "
                "for the constant_cosine schedule"
            )

    def __call__(self, step: int) -> float:
        decay_start = self.warmup_steps if self.kind == "cosine" else self.total_steps - self.tail_steps
        return warmup_cosine(step, warmup_steps=self.warmup_steps, decay_start=decay_start,
                             total_steps=self.total_steps, min_factor=self.min_factor)


def warmup_cosine(
    step: int, *, warmup_steps: int, decay_start: int, total_steps: int, min_factor: float = 0.0
) -> float:
    """Multiplier of the base LR at step ``step`` (0-based): (step + 1) / warmup_steps during the
    warm-up, then 1 until ``decay_start``, then a cosine from 1 to ``min_factor`` at ``total_steps``.

    A warm-up longer than the run never reaches 1 (the dense probes' 1.5 warm-up epochs in a
    1-epoch run).
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if step < decay_start:
        return 1.0
    span = max(1, total_steps - decay_start)
    progress = min(1.0, (step - decay_start) / span)
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))
