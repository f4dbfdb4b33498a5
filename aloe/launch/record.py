"""The job record: a small JSON per output that lets a restarted launcher re-attach.

Records live with the job logs, not beside the outputs (a tool that scans its output folder,
such as img2dataset, must not meet foreign files there):
``<log_dir>/records/<output name>.<hash of the output's absolute path>.job.json``, written
atomically, holds::

    {
      "version": 2,
      "output": "/abs/path/of/the/output",
      "call": "<sha256 of function name + kwargs>",   # a different call never re-attaches
      "cluster": "slurm" | "local",
      "folder": "/abs/path/of/the/submitit/log/folder",
      "job_id": "4242" | "4242_7" (array task) | "<pid>" (local),
      "num_tasks": 1,
      "attempt": 2,                                     # 1-based, counts across restarts
      "resources": {"mem_gb": 32, "timeout_min": 120, ...},  # what this attempt asked for
      "state": "submitted" | "succeeded" | "failed" | "cancelled",
      "submitted_at": "2026-11-22T10:00:00.123+00:00",
      "history": [{"attempt": 1, "job_id": "4241", "resources": {...}, "outcome": "oom"}],
      "pack": null | {"request": "<id>", "result": "<item result pickle>", "log": "<item log>",
                      "index": 0, "size": 7}           # the job runs several calls (aloe.launch.pack)
    }

``outcome`` in history is one of "oom", "timeout", "error", "cancelled", "output_lost" (a job of an
earlier launcher run finished, but its output was removed before this run re-attached).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Mapping

from aloe.io import read_json, write_json

RECORD_SUFFIX = ".job.json"
RECORD_VERSION = 2
RECORDS_DIR = "records"


@dataclasses.dataclass
class JobRecord:
    call: str
    cluster: str
    folder: str
    job_id: str
    num_tasks: int
    attempt: int
    resources: dict[str, Any]
    state: str = "submitted"
    submitted_at: str = ""
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    output: str = ""
    version: int = RECORD_VERSION
    pack: dict[str, Any] | None = None  # a packed call (aloe.launch.pack): request, result, log, index, size

    def end_attempt(self, outcome: str, state: str = "failed") -> None:
        """Close the current attempt: append it to ``history`` with ``outcome``, set ``state``."""
        self.history.append({"attempt": self.attempt, "job_id": self.job_id, "resources": self.resources,
                             "outcome": outcome})
        self.state = state

    def escalations(self) -> int:
        """How many earlier attempts of this call ended in OOM or timeout (drives escalation)."""
        return sum(h["outcome"] in ("oom", "timeout") for h in self.history)


def record_path(output: str | os.PathLike, log_dir: str | os.PathLike) -> Path:
    output = Path(output).absolute()
    digest = hashlib.sha256(str(output).encode()).hexdigest()[:12]
    return Path(log_dir).absolute() / RECORDS_DIR / f"{output.name}.{digest}{RECORD_SUFFIX}"


def read_record(output: str | os.PathLike, log_dir: str | os.PathLike) -> JobRecord | None:
    """The record of ``output`` kept in ``log_dir``, or None when there is none.

    A record that does not parse is an error naming the file: guessing would risk a duplicate
    job writing the same output.
    """
    return read_record_file(record_path(output, log_dir))


def read_record_file(path: str | os.PathLike) -> JobRecord | None:
    path = Path(path)
    if not path.exists():
        return None
    try:
        data = read_json(path)
        if data.get("version") != RECORD_VERSION:
            raise ValueError(f"version {data.get('version')!r}, expected {RECORD_VERSION}")
        return JobRecord(**data)
    except (ValueError, TypeError) as err:
        raise ValueError(f"job record {path} is not readable ({err}); delete it to submit afresh") from err


def write_record(output: str | os.PathLike, log_dir: str | os.PathLike, record: JobRecord) -> None:
    write_json(record_path(output, log_dir), dataclasses.asdict(record))


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


def call_key(fn: Callable[..., Any] | str, kwargs: Mapping[str, Any]) -> str:
    """Identify a call by the function's qualified name and its kwargs (JSON, reprs for the rest).

    ``fn`` may be the name itself ("module:function"). A Checkpointable instance is identified by
    its class: its state changes as it trains. The module name is part of the key, so call
    functions from an importable module: the same function run as ``__main__`` in one process and
    imported in another is another call.
    """
    if isinstance(fn, str):
        name = fn
    else:
        target = fn if hasattr(fn, "__qualname__") else type(fn)
        name = f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"
    text = json.dumps({"fn": name, "kwargs": dict(kwargs)}, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()
