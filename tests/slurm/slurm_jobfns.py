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


def slow_first(counter: str, seconds: float, value: int) -> int:
    """Sleep ``seconds`` on the first execution (a job limit kills it), return at once after."""
    from pathlib import Path

    path = Path(counter)
    first = not path.exists()
    path.write_text("ran\n")
    if first:
        time.sleep(seconds)
    return value


def nap_into(seconds: float, value: int, output: str) -> int:
    """``nap``, then write ``value`` to ``output`` (a re-attaching launcher checks the output is there)."""
    from pathlib import Path

    time.sleep(seconds)
    Path(output).write_text(str(value))
    return value
