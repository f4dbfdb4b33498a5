"""Talking to one submitted job: rebuild it from a record, poll it, read its outcome, cancel it.

submitit rebuilds a SLURM job from (folder, job id) alone and reads its result pickle. Whether a
SLURM job has ended comes from the workflow's shared status answer (``aloe.launch.poller``), never
from submitit's own watcher: that one calls sacct from every waiting process (``job.done()``,
``job.state``), so those are only called where the shared answer cannot tell.

A re-created ``LocalJob`` has no process handle (submitit keeps those only in the submitting
interpreter), so it reports "done" while the job still runs; for local jobs we therefore check
the controller process ourselves by pid, and confirm the pid is still submitit's controller for
this folder (``/proc/<pid>/cmdline``) so a reused pid is never mistaken for our job nor signalled.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import submitit
from submitit.core.utils import UncompletedJobError, pickle_load
from submitit.local.local import LocalJob

from aloe.launch.poller import Snapshot
from aloe.launch.record import JobRecord
from aloe.launch.resources import DEFAULT_TIMEOUT_MIN

OOM_MARKERS = (
    "MemoryError",  # Python, and torch.OutOfMemoryError's name
    "OutOfMemoryError",
    "CUDA out of memory",
    "out of memory",
    "oom-kill",  # slurmstepd after a cgroup OOM kill
    "oom_kill",
    "Exceeded job memory limit",
)
TIMEOUT_MARKERS = (
    "Job not requeued because: timed-out",  # submitit's own timeout handling
    "DUE TO TIME LIMIT",  # slurmstepd
)
_SLURM_STATES = {"OUT_OF_MEMORY": "oom", "TIMEOUT": "timeout", "DEADLINE": "timeout"}


def rebuild(record: JobRecord) -> submitit.Job[Any]:
    tasks = list(range(record.num_tasks))
    if record.cluster == "slurm":
        return submitit.SlurmJob(folder=record.folder, job_id=record.job_id, tasks=tasks)
    if record.cluster == "local":
        return LocalJob(folder=record.folder, job_id=record.job_id, tasks=tasks)
    raise ValueError(f"job record names an unknown cluster {record.cluster!r}")


def _result_pickles(job: submitit.Job[Any]) -> list[Path]:
    return [job.task(k).paths.result_pickle for k in range(job.num_tasks)]


def local_alive(job_id: str, folder: str) -> bool:
    """Whether submitit's local controller ``job_id`` (a pid) for ``folder`` still runs."""
    proc = Path("/proc") / job_id
    try:
        stat = (proc / "stat").read_text()
        cmdline = (proc / "cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError):
        return False
    if stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X"):  # zombie: exited, not yet reaped
        return False
    return b"submitit.local._local" in cmdline and os.fsencode(folder) in cmdline


def _local_alive_or_finishing(job: submitit.Job[Any], record: JobRecord, grace_s: float = 5.0) -> bool:
    """A local controller that looks gone is watched for ``grace_s`` before it counts as dead: its
    result pickle can become visible a moment after the process check, and a controller that has
    only just been started can miss the command-line check once. Seen as a rare CI failure."""
    deadline = time.monotonic() + grace_s
    while True:
        if local_alive(record.job_id, record.folder) or all(p.exists() for p in _result_pickles(job)):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def is_done(job: submitit.Job[Any], record: JobRecord, status: Snapshot | None = None,
            returned_at: float | None = None, grace_s: float = 60.0) -> bool:
    """Whether the job has ended; ``status`` is the shared answer of this poll round (SLURM).

    A SLURM job is done once an answer taken after its submission no longer lists it, even when
    a result pickle exists: a job that SLURM requeues on preemption (PreemptMode=REQUEUE) stays
    listed and leaves the error pickle of its killed attempt behind (submitit's own ``scontrol
    requeue`` fails on a job already requeued), which the next attempt overwrites with the real
    result. A job whose every task has returned (``returned_at``, from :func:`returned_at`) is
    also done ``grace_s`` after that while SLURM still lists it: an epilog that hangs is not the
    job's failure. Without an answer nothing else is concluded.
    """
    if record.cluster == "slurm":
        if status is not None and status.has_left(record.job_id, record.submitted_at):
            return True
        return returned_at is not None and time.time() - returned_at > grace_s
    if all(p.exists() for p in _result_pickles(job)):
        return True
    if record.cluster == "local":
        return not _local_alive_or_finishing(job, record)
    return job.done()


def returned_at(job: submitit.Job[Any]) -> float | None:
    """When the last task of the job wrote a "success" result (file time), None while any task has
    not. submitit writes the pickle elsewhere and renames it, so it is never seen half-written."""
    times = []
    for path in _result_pickles(job):
        try:
            if pickle_load(path)[0] != "success":
                return None
            times.append(path.stat().st_mtime)
        except Exception:
            return None
    return max(times, default=None)


def outcome(job: submitit.Job[Any], record: JobRecord, status: Snapshot | None = None) -> tuple[bool, Any]:
    """(True, result of task 0) on success, else (False, error text). Call once ``is_done``."""
    if record.cluster == "local" and not all(p.exists() for p in _result_pickles(job)):
        # The controller has exited without a result: killed, timed out or cancelled.
        return False, f"local job {record.job_id} ended without a result\n{_tail(job.paths.stderr)}"
    if record.cluster == "slurm" and not _all_appear(_result_pickles(job)):
        # What submitit's results() would say, without its sacct call for the state.
        state = (status.end_state(record.job_id) if status is not None else None) or "unknown"
        return False, (f"Job {record.job_id} has not produced any output (state: {state})\n"
                       f"{_tail(job.paths.stderr)}")
    try:
        return True, job.results()[0]
    except UncompletedJobError as err:  # FailedJobError (the job raised) is a subclass
        return False, str(err)


def _all_appear(paths: list[Path], wait_s: float = 15.0) -> bool:
    """Whether every path exists, allowing a slow shared filesystem ``wait_s`` to show them. As in
    submitit, a chmod of each folder to its own mode makes an NFS client drop its cached listing."""
    for folder in {p.parent for p in paths}:
        with contextlib.suppress(OSError):
            folder.chmod(folder.stat().st_mode)
    deadline = time.monotonic() + wait_s
    while not all(p.exists() for p in paths):
        if time.monotonic() >= deadline:
            return False
        time.sleep(1.0)
    return True


def classify(job: submitit.Job[Any], record: JobRecord, error: str, status: Snapshot | None = None) -> str:
    """'oom', 'timeout' or 'error' for a failed job, from its state, error text and logs. The SLURM
    state comes from the shared answer; only a job it has no end state for (one that came and went
    between two polls) asks submitit, which calls sacct once."""
    if record.cluster == "slurm":
        state = status.end_state(record.job_id) if status is not None else None
        state = state or str(job.state).split()[0].upper()
        if state in _SLURM_STATES:
            return _SLURM_STATES[state]
    tail = _tail(job.paths.stderr)
    if _died_from_stop_signal(tail):
        return "timeout"
    text = error + "\n" + tail
    if any(m in text for m in OOM_MARKERS):
        return "oom"
    if any(m in text for m in TIMEOUT_MARKERS):
        return "timeout"
    if record.cluster == "local" and "ended without a result" in error and _ran_out_of_time(record):
        # The local controller kills a job at its timeout without writing anything.
        return "timeout"
    return "error"


def _died_from_stop_signal(stderr_tail: str) -> bool:
    """Whether srun's last word on the job is that a task died from SIGUSR2: SLURM's warning before
    the time limit arrived before the task could requeue itself (Slurm 22.05 sends it again right
    after a requeued attempt starts, while Python is still loading the job). The run resumes from
    its checkpoint when resubmitted, so this counts as a timeout, not as an error of the job."""
    srun_errors = [line for line in stderr_tail.splitlines() if line.startswith("srun: error:")]
    return bool(srun_errors) and "User defined signal 2" in srun_errors[-1]


def _ran_out_of_time(record: JobRecord) -> bool:
    started = datetime.datetime.fromisoformat(record.submitted_at)
    elapsed = (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds()
    return elapsed >= 60 * float(record.resources.get("timeout_min", DEFAULT_TIMEOUT_MIN)) - 1


def cancel(records: list[JobRecord]) -> None:
    """Cancel jobs: one scancel for all SLURM ids, SIGINT to each live local controller.

    The local controller turns SIGINT into SIGINT then SIGKILL for its task processes.
    """
    slurm_ids = [r.job_id for r in records if r.cluster == "slurm"]
    if slurm_ids:
        subprocess.run(["scancel", *slurm_ids], check=False)
    local = [r for r in records if r.cluster == "local" and local_alive(r.job_id, r.folder)]
    for r in local:
        os.kill(int(r.job_id), signal.SIGINT)
    deadline = time.monotonic() + 10
    while local and time.monotonic() < deadline:
        local = [r for r in local if local_alive(r.job_id, r.folder)]
        time.sleep(0.05)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""
