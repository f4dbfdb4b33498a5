"""One running Snakemake instance per working folder, enforced by a lock of our own.

Why. Snakemake's own locks cannot be relied on with the pinned Snakemake 9.27.1: every instance
that leaves its ``persistence.lock()`` context calls ``_delete_locks``
(``snakemake/persistence/file.py``), which removes its own lock files and then the whole
``.snakemake/locks`` folder with ``shutil.rmtree`` -- including the lock files of another
instance that is still running. An instance with "Nothing to be done" (or any finished one)
thus unlocks a running one; a third instance then starts jobs beside it and, when stopped,
deletes their "incomplete" outputs, which can be files the first instance has just finished.

How. The Snakefile calls ``hold_workflow_lock(workflow)`` before it builds anything. It takes an
exclusive ``flock`` on ``.snakemake/aloe.workflow.lock`` and keeps the file open for the life of
the process; the kernel releases it when the process ends, however it ends (no stale lock after
a crash or ``kill -9``). A second instance in the same folder fails at once, before planning a
single job, with a message naming the holder. Dry runs (``-n``) only read, so they neither take
nor need the lock; job processes that re-read the Snakefile (remote or subprocess execution)
belong to the instance that holds it.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from pathlib import Path
from typing import IO, Any

LOCK_FILE = Path(".snakemake") / "aloe.workflow.lock"
_held: dict[str, IO[str]] = {}  # lock path -> open file holding the flock (for this process's life)


class WorkflowLockedError(RuntimeError):
    """Another Snakemake instance runs in this folder."""


def acquire(path: str | os.PathLike = LOCK_FILE) -> None:
    """Take the exclusive lock on ``path`` for the rest of this process, or raise WorkflowLockedError."""
    path = Path(path).absolute()
    if str(path) in _held:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "a process that has not written its details yet"
        f.close()
        raise WorkflowLockedError(
            f"another Snakemake instance is running in {path.parent.parent} ({holder}); starting a second one "
            f"beside it could run its jobs twice and delete its outputs. Wait for it to finish, or stop it; a "
            f"dry run (-n) is allowed meanwhile. Lock file: {path}"
        ) from None
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(sys.argv)}\n")
    f.flush()
    _held[str(path)] = f


def release(path: str | os.PathLike = LOCK_FILE) -> None:
    """Give up a lock this process holds (an instance's lock otherwise lasts until it exits)."""
    f = _held.pop(str(Path(path).absolute()), None)
    if f is not None:
        f.close()


def hold_workflow_lock(workflow: Any) -> None:
    """The Snakefile's guard (see the module docstring); ``workflow`` is Snakemake's global."""
    if not workflow.is_main_process or workflow.output_settings.dryrun:
        return
    acquire(LOCK_FILE)
