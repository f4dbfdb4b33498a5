"""One SLURM status poller per workflow: every waiting process reads one shared answer.

A workflow has one rule process per job in flight, each waiting on its job. Instead of each
asking SLURM, they share a status file (the workflow's ``results/jobs/slurm_status.json``;
for a direct ``launch`` call, ``<log_dir>/slurm_status.json``)::

    {
      "version": 1,
      "taken_at": 1796178319.2,          # epoch s, just before the squeue call that gave "live"
      "live": {"4242": "RUNNING", "4243_7": "PENDING", ...},   # squeue -r -u $USER: all the user's jobs
      "ended": {"4241": {"state": "TIMEOUT", "at": 1796178259.0}},  # sacct, for jobs that left squeue
      "next_at": 1796178385.0,           # no new poll before this (interval, jitter, backoff)
      "tried_at": 1796178319.2,          # the last poll, successful or not
      "failures": 0,                     # consecutive failed squeue calls
      "error": ""                        # the last failure's message
    }

Whichever waiting process finds the answer due (``next_at`` passed, or no file yet) and wins a
non-blocking ``flock`` on ``slurm_status.json.lock`` refreshes it: one ``squeue`` for all the
user's jobs and, only when jobs left the queue since the previous answer, one ``sacct -j`` for
those (their end states, to tell a time limit or OOM from other failures). The others keep
reading the file. Intervals are ``status_interval_s`` (default 60 s: a squeue costs slurmctld
two RPCs, job and partition info, so this is 2 RPCs a minute) lengthened by up to 20 % at random
so that several workflows drift apart; after a failed squeue the wait doubles per failure up to
``status_backoff_max_s`` (default 600 s). A failed poll keeps the previous answer: it is still
true as of its ``taken_at``. While a waiting process has a job whose function has returned (its
result file says so) but that the answer still lists, the answer is due ``FINISH_POLL_S`` after
the last poll: the launcher returns once SLURM has let the job go (until then its GPUs count
against the workflow's caps), seconds rather than an interval later.
"""

from __future__ import annotations

import dataclasses
import datetime
import fcntl
import json
import logging
import os
import pwd
import random
import subprocess
import time
from pathlib import Path
from typing import Any

from aloe.io import write_json

STATUS_VERSION = 1
STATUS_FILE = "slurm_status.json"
DEFAULT_INTERVAL_S = 60.0
DEFAULT_BACKOFF_MAX_S = 600.0
JITTER = 0.2
FINISH_POLL_S = 5.0
# submitted_at is written after sbatch returned, to the millisecond; the margin covers that rounding
# and clock steps, at the cost of a later verdict on a job that ends within seconds of submission.
SUBMIT_MARGIN_S = 2.0
ENDED_KEEP_S = 3600.0  # how long the end state of a job that left squeue stays in the answer
# sacct states of a job that will not run again (without --duplicates sacct shows the last attempt)
FINAL_STATES = {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY",
                "PREEMPTED", "TIMEOUT"}
log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """One shared answer: what squeue listed at ``taken_at``, and end states from sacct."""

    taken_at: float
    live: dict[str, str]
    ended: dict[str, str]

    def has_left(self, job_id: str, submitted_at: str) -> bool:
        """Whether the job had left the queue when this answer was taken. A job submitted after
        the squeue call is absent from it without having ended, so it counts only once an answer
        newer than its submission leaves it out."""
        return self.taken_at > _epoch(submitted_at) + SUBMIT_MARGIN_S and job_id not in self.live

    def end_state(self, job_id: str) -> str | None:
        """The job's final sacct state ("TIMEOUT", "OUT_OF_MEMORY", ...), None when not known."""
        state = self.ended.get(job_id, "").split(" ")[0].upper()  # "CANCELLED by 0" -> CANCELLED
        return state if state in FINAL_STATES else None


class SlurmStatus:
    """The shared status answer kept in ``path``; ``current()`` is all a waiting process calls."""

    def __init__(self, path: str | os.PathLike, interval_s: float = DEFAULT_INTERVAL_S,
                 backoff_max_s: float = DEFAULT_BACKOFF_MAX_S):
        self.path = Path(path).absolute()
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.interval_s, self.backoff_max_s = float(interval_s), float(backoff_max_s)
        self._seen: tuple[tuple[int, int, int], dict[str, Any]] | None = None

    def current(self, finishing: bool = False) -> Snapshot | None:
        """The latest answer, refreshed first when it is due and no other process is refreshing
        it; None while no squeue call has succeeded yet. ``finishing``: a job of the caller has
        returned and waits to leave the queue."""
        data = self._read()
        if data is None or self._due(data, finishing):
            if self._refresh(finishing):
                data = self._read()
        if data is None or "taken_at" not in data:
            return None
        ended = {k: v.get("state", "") for k, v in data.get("ended", {}).items()}
        return Snapshot(taken_at=data["taken_at"], live=data.get("live", {}), ended=ended)

    def _due(self, data: dict[str, Any], finishing: bool) -> bool:
        """Whether the answer should be refreshed; a ``next_at`` further off than any wait this
        poller sets (the clock was set back) counts as due."""
        now = time.time()
        wait = data.get("next_at", 0.0) - now
        if wait <= 0 or wait > max(self.interval_s, self.backoff_max_s) * (1 + JITTER):
            return True
        return finishing and not data.get("failures") and now >= data.get("taken_at", 0.0) + FINISH_POLL_S

    def _read(self) -> dict[str, Any] | None:
        """The file's content; parsed again only after it was replaced (every write is a rename)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if self._seen is None or self._seen[0] != key:
            try:
                data = json.loads(self.path.read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                return None
            if data.get("version") != STATUS_VERSION:
                return None
            self._seen = (key, data)
        return self._seen[1]

    def _refresh(self, finishing: bool) -> bool:
        """Poll SLURM unless another process holds the lock or has just polled; True if polled."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            previous = self._read() or {}
            if previous and not self._due(previous, finishing):  # another process polled meanwhile
                return False
            write_json(self.path, self._poll(previous))
            return True
        finally:
            os.close(fd)  # releases the lock

    def _poll(self, previous: dict[str, Any]) -> dict[str, Any]:
        taken_at = time.time()
        data = {**previous, "version": STATUS_VERSION, "tried_at": taken_at}
        try:
            live = squeue_states()
        except (OSError, subprocess.SubprocessError) as err:
            failures = int(previous.get("failures", 0)) + 1
            delay = min(self.interval_s * 2**failures, max(self.backoff_max_s, self.interval_s))
            log.warning("squeue failed (%d in a row), next try in %.0f s: %s", failures, delay, _reason(err))
            data.update(failures=failures, error=_reason(err), next_at=taken_at + delay * _jitter())
            return data
        ended = {k: v for k, v in previous.get("ended", {}).items() if v.get("at", 0.0) > taken_at - ENDED_KEEP_S}
        left = sorted(set(previous.get("live", {})) - set(live))
        if left:
            for job_id, state in sacct_states(left).items():
                ended[job_id] = {"state": state, "at": taken_at}
        data.update(taken_at=taken_at, live=live, ended=ended, failures=0, error="",
                    next_at=taken_at + self.interval_s * _jitter())
        return data


def squeue_states() -> dict[str, str]:
    """Job id -> state of every job of this user that SLURM still queues or runs (array tasks one
    by one, ``-r``). Raises when squeue fails: then nothing is concluded from it."""
    user = pwd.getpwuid(os.getuid()).pw_name
    out = subprocess.run(["squeue", "-h", "-r", "-u", user, "-o", "%i %T"], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    return dict(line.split(None, 1) for line in out.splitlines() if len(line.split(None, 1)) == 2)


def sacct_states(job_ids: list[str]) -> dict[str, str]:
    """Job id -> sacct state of the allocations of ``job_ids`` (one call); {} when sacct fails
    (no accounting): the launcher then asks submitit for the state of a failed job."""
    try:
        out = subprocess.run(["sacct", "-X", "-n", "-P", "-o", "JobID,State", "-j", ",".join(job_ids)],
                             capture_output=True, text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError) as err:
        log.warning("sacct failed: %s", _reason(err))
        return {}
    wanted = set(job_ids)
    rows = (line.split("|", 1) for line in out.splitlines() if "|" in line)
    return {job_id: state for job_id, state in rows if job_id in wanted}


def _jitter() -> float:
    return 1.0 + random.uniform(0.0, JITTER)


def _epoch(iso: str) -> float:
    return datetime.datetime.fromisoformat(iso).timestamp() if iso else 0.0


def _reason(err: BaseException) -> str:
    stderr = getattr(err, "stderr", None)
    return (stderr.strip() if isinstance(stderr, str) and stderr.strip() else str(err))[:300]
