"""Learning-rate schedules as a picklable LambdaLR factor (so the scheduler state is plain data)."""

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
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        decay_start = self.warmup_steps if self.kind == "cosine" else self.total_steps - self.tail_steps
        if step < decay_start:
            return 1.0
        span = max(1, self.total_steps - decay_start)
        progress = min(1.0, (step - decay_start) / span)
        return self.min_factor + (1.0 - self.min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))
