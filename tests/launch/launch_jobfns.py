"""Job functions for the launcher tests. They run in submitit's job subprocesses, which import
this module by name (the tests put this folder on PYTHONPATH), and leave traces on disk
(counter files: one line per execution) so a test can count how often a job really ran."""

from __future__ import annotations

import os
import time
from pathlib import Path

import submitit


def _count(counter: str) -> int:
    """Append one line for this execution; return how many executions came before."""
    path = Path(counter)
    before = len(path.read_text().splitlines()) if path.exists() else 0
    with path.open("a") as f:
        f.write(f"{os.getpid()}\n")
    return before


def _wait_for(gate: str, limit_s: float = 60.0) -> None:
    deadline = time.monotonic() + limit_s
    while not Path(gate).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {gate} never opened")
        time.sleep(0.05)


def add(a: int, b: int, counter: str) -> int:
    _count(counter)
    return a + b


def gated(value: int, counter: str, started: str, gate: str, output: str) -> int:
    """Announce the start (own pid in ``started``), wait until ``gate`` exists, write ``output``."""
    _count(counter)
    Path(started).write_text(str(os.getpid()))
    _wait_for(gate)
    Path(output).write_text(str(value))
    return value


def oom_once(counter: str) -> dict[str, str]:
    """Raise MemoryError on the first execution; then report the limits this job was given."""
    if _count(counter) == 0:
        raise MemoryError("simulated CUDA out of memory")
    return {"timeout_s": os.environ["SUBMITIT_LOCAL_TIMEOUT_S"]}


def slow_once(counter: str, value: int) -> int:
    """Outlive any small timeout on the first execution; return at once afterwards."""
    if _count(counter) == 0:
        time.sleep(120)
    return value


def fail_first(counter: str) -> str:
    if _count(counter) == 0:
        raise ValueError("bad sample 17 in shard 3")
    return "fixed"


class Trainer(submitit.helpers.Checkpointable):
    """Checkpointable job: the first run waits to be preempted, the requeued run returns."""

    def __call__(self, counter: str, started: str, value: int) -> int:
        if _count(counter) == 0:
            Path(started).write_text(str(os.getpid()))
            time.sleep(120)
        return value


def timed(value: int, span: str) -> int:
    """Write this job's (start, end) wall-clock times to ``span``, to check concurrency."""
    start = time.time()
    time.sleep(0.3)
    Path(span).write_text(f"{start} {time.time()}")
    return value * value
