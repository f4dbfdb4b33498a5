"""Job functions of the SLURM tests that start waiting processes: the jobs import this module by
name (the waiting processes put this folder on PYTHONPATH, and sbatch passes it on)."""

from __future__ import annotations

import time


def nap(seconds: float, value: int) -> int:
    time.sleep(seconds)
    return value


def fail_after(seconds: float, message: str) -> None:
    time.sleep(seconds)
    raise ValueError(message)
