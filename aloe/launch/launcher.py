"""Run plain functions as cluster jobs through submitit, with re-attach, cancel and retries.

``launch`` runs one call, ``launch_many`` many calls of the same function as one SLURM job
array. Each output gets a job record in the log folder (see ``aloe.launch.record``): a restarted
launcher re-attaches to a job of the same call that is still running or has finished,
instead of submitting it again.

Executors: "slurm" (submitit's SlurmExecutor through AutoExecutor), "local" (submitit's
LocalExecutor: real subprocesses), "inprocess" (a direct call, no job, no record), "auto"
(slurm when sbatch and srun are on PATH and a SLURM controller answers, else inprocess).
submitit's "debug" executor is not offered: it opens pdb on any error, which hangs a
non-interactive workflow.

Signals: SIGINT and SIGTERM reach the launcher only in the main thread of its own process
(call it from a Snakemake ``script:``, not a ``run:`` block). They cancel the jobs this call
waits on, unless ``detach_on_interrupt``: then the jobs keep running and a restart re-attaches.
Local jobs share the terminal's process group, so a Ctrl-C typed in the terminal reaches them
directly; detaching local jobs works for signals sent to the launcher alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Mapping, Sequence

import submitit

from aloe.launch import jobs
from aloe.launch.poller import STATUS_FILE, SlurmStatus, Snapshot
from aloe.launch.record import JobRecord, call_key, now_iso, read_record, write_record
from aloe.launch.resources import check_resources, escalate, executor_arguments, status_settings

ExecutorName = Literal["auto", "slurm", "local", "inprocess"]
log = logging.getLogger(__name__)


class LaunchError(RuntimeError):
    """One or more jobs failed for good; the message names each output, outcome and log."""


@dataclasses.dataclass
class _Item:
    output: Path
    kwargs: dict[str, Any]
    key: str
    record: JobRecord | None = None
    job: submitit.Job[Any] | None = None
    attempts: int = 0  # submissions made by this call
    returned_at: float | None = None  # when the current job's function returned (SLURM; jobs.returned_at)
    attached: bool = False  # the current job came from an earlier launcher run
    result: Any = None
    error: str = ""


def resolve_executor(executor: ExecutorName) -> str:
    if executor == "auto":
        return "slurm" if _slurm_answers() else "inprocess"
    if executor not in ("slurm", "local", "inprocess"):
        raise ValueError(f"executor: expected auto, slurm, local or inprocess, got {executor!r}")
    return executor


def _slurm_answers() -> bool:
    """sbatch and srun are on PATH and ``sinfo`` reaches a controller. Slurm's client tools
    installed without a configured cluster (a laptop, a CI image) do not count as a cluster."""
    if not (shutil.which("sbatch") and shutil.which("srun")):
        return False
    try:
        probe = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as err:
        log.warning("executor auto: sbatch is on PATH but sinfo failed (%s): running in-process", err)
        return False
    if probe.returncode != 0:
        log.warning("executor auto: sbatch is on PATH but no SLURM controller answers (sinfo: %s): running "
                    "in-process; set launcher.executor to slurm to fail instead", probe.stderr.strip()[:200])
        return False
    return True


def make_executor(resources: Mapping[str, Any], cluster: str, folder: str | os.PathLike) -> submitit.AutoExecutor:
    """An AutoExecutor for ``cluster`` ("slurm" or "local") with ``resources`` applied."""
    ctor, params = executor_arguments(resources, cluster)
    executor = submitit.AutoExecutor(folder=folder, cluster=cluster, **ctor)
    executor.update_parameters(**params)
    return executor


def launch(
    fn: Callable[..., Any],
    kwargs: Mapping[str, Any],
    *,
    output: str | os.PathLike,
    resources: Mapping[str, Any],
    log_dir: str | os.PathLike,
    executor: ExecutorName = "auto",
    detach_on_interrupt: bool = False,
    poll_s: float = 1.0,
    call: str | None = None,
    status_file: str | os.PathLike | None = None,
) -> Any:
    """Run ``fn(**kwargs)`` as a job that produces ``output``; return its result.

    ``fn`` must be picklable: a module-level function or a ``submitit.helpers.Checkpointable``
    instance (passed to submitit unchanged, so it is requeued on preemption/timeout). ``fn``
    writes ``output`` itself; the launcher writes only its job record (``record.record_path``). ``call`` identifies
    the call for re-attaching (default: ``record.call_key(fn, kwargs)``); pass one when ``fn``
    carries its arguments inside, as a Checkpointable does. ``status_file``: see ``launch_many``.
    """
    return launch_many(
        fn,
        [kwargs],
        outputs=[output],
        resources=resources,
        log_dir=log_dir,
        executor=executor,
        detach_on_interrupt=detach_on_interrupt,
        poll_s=poll_s,
        calls=None if call is None else [call],
        status_file=status_file,
    )[0]


def launch_many(
    fn: Callable[..., Any],
    kwargs_list: Sequence[Mapping[str, Any]],
    *,
    outputs: Sequence[str | os.PathLike],
    resources: Mapping[str, Any],
    log_dir: str | os.PathLike,
    executor: ExecutorName = "auto",
    detach_on_interrupt: bool = False,
    poll_s: float = 1.0,
    calls: Sequence[str] | None = None,
    status_file: str | os.PathLike | None = None,
) -> list[Any]:
    """Run ``fn(**kwargs)`` for each kwargs (one output each); results in input order.

    On SLURM all new submissions of one round go out as ONE job array, at most
    ``resources["array_parallelism"]`` running at once; the local executor starts at most that
    many processes at a time (default: the CPU count). Jobs failing with OOM or timeout are
    resubmitted with escalated memory and time, up to ``max_attempts`` submissions per output;
    other failures are reported, not retried, after every job has ended.

    Every ``poll_s`` the call looks at its jobs' result files and at the shared SLURM status
    answer in ``status_file`` (default ``<log_dir>/slurm_status.json``; the workflow passes one
    file for all its rules), which at most one process refreshes per ``status_interval_s``
    (``aloe.launch.poller``).
    """
    if len(kwargs_list) != len(outputs):
        raise ValueError(f"launch_many: {len(kwargs_list)} kwargs but {len(outputs)} outputs")
    paths = [Path(o).absolute() for o in outputs]
    if len(set(paths)) != len(paths):
        raise ValueError("launch_many: outputs must be distinct (each output has one job record)")
    res = check_resources(resources)
    cluster = resolve_executor(executor)
    if cluster == "inprocess":
        return [fn(**kw) for kw in kwargs_list]
    keys = list(calls) if calls is not None else [call_key(fn, kw) for kw in kwargs_list]
    if len(keys) != len(paths):
        raise ValueError(f"launch_many: {len(keys)} call keys but {len(paths)} outputs")
    items = [_Item(p, dict(kw), k) for p, kw, k in zip(paths, kwargs_list, keys)]
    status_path = None if status_file is None else Path(status_file).absolute()
    run = _Run(fn, res, cluster, Path(log_dir).absolute(), poll_s, status_path)
    with _sigterm_as_interrupt():
        try:
            run.execute(items)
        except KeyboardInterrupt:
            live = [i for i in items if i.record is not None and i.record.state == "submitted"]
            if detach_on_interrupt:
                log.warning("interrupted: leaving %d job(s) running; a restart re-attaches", len(live))
            else:
                run.cancel(live)
            raise
    failed = [i for i in items if i.error]
    if failed:
        raise LaunchError("\n\n".join(i.error for i in failed))
    return [i.result for i in items]


class _Run:
    def __init__(self, fn: Callable[..., Any], resources: dict[str, Any], cluster: str, folder: Path, poll_s: float,
                 status_file: Path | None = None):
        self.fn, self.resources, self.cluster, self.folder, self.poll_s = fn, resources, cluster, folder, poll_s
        self.status = SlurmStatus(status_file or folder / STATUS_FILE, **status_settings(resources))
        self.max_attempts = int(resources.get("max_attempts", 3))
        default_width = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        self.local_width = int(resources.get("array_parallelism", default_width))

    def execute(self, items: list[_Item]) -> None:
        pending, active = [], []
        for item in items:
            (active if self._attach(item) else pending).append(item)
        while pending or active:
            room = len(pending) if self.cluster == "slurm" else self.local_width - len(active)
            if room > 0 and pending:
                batch, pending = pending[:room], pending[room:]
                self._submit(batch)
                active += batch
            still = []
            status = None
            if self.cluster == "slurm" and active:
                for item in active:
                    if item.returned_at is None:  # once returned, a job does not run again
                        item.returned_at = jobs.returned_at(item.job)
                status = self.status.current(finishing=any(i.returned_at is not None for i in active))
            for item in active:
                assert item.job is not None and item.record is not None
                if not jobs.is_done(item.job, item.record, status, item.returned_at, self.status.interval_s):
                    still.append(item)
                elif self._finish(item, status):
                    pending.append(item)
            active = still
            if active:
                time.sleep(self.poll_s)

    def _attach(self, item: _Item) -> bool:
        """Re-attach to this call's job from an earlier run; else prepare a fresh submission."""
        record = read_record(item.output, self.folder)
        if record is not None and record.call != item.key:
            if record.state == "submitted":
                # A job for other kwargs would later overwrite this output: stop it.
                log.warning(
                    "cancelling job %s: it was launched for %s with other arguments", record.job_id, item.output
                )
                jobs.cancel([record])
            record = None
        if record is not None and record.state == "succeeded":
            record = dataclasses.replace(record, history=[])  # output is being rebuilt: start afresh
        item.record = record
        if record is None or record.state != "submitted":
            return False
        item.job, item.attached, item.attempts, item.returned_at = jobs.rebuild(record), True, 1, None
        log.info("re-attached to job %s for %s", record.job_id, item.output)
        return True

    def _submit(self, batch: list[_Item]) -> None:
        groups: dict[str, list[_Item]] = {}
        for item in batch:
            failures = item.record.escalations() if item.record else 0
            res = escalate(self.resources, failures)
            groups.setdefault(json.dumps(res, sort_keys=True), []).append(item)
        for res_json, group in groups.items():
            res = json.loads(res_json)
            executor = make_executor(res, self.cluster, self.folder)
            with _clean_submission_env():
                if len(group) == 1:
                    submitted = [executor.submit(self.fn, **group[0].kwargs)]
                else:
                    with executor.batch():  # one job array on SLURM
                        submitted = [executor.submit(self.fn, **i.kwargs) for i in group]
            for item, job in zip(group, submitted):
                history = item.record.history if item.record else []
                item.job, item.attached, item.returned_at = job, False, None
                item.attempts += 1
                item.record = JobRecord(
                    call=item.key,
                    cluster=self.cluster,
                    folder=str(executor.folder),
                    job_id=str(job.job_id),
                    num_tasks=job.num_tasks,
                    attempt=len(history) + 1,
                    resources=res,
                    submitted_at=now_iso(),
                    history=list(history),
                    output=str(item.output),
                )
                write_record(item.output, self.folder, item.record)
                log.info("submitted job %s (attempt %d) for %s", job.job_id, item.record.attempt, item.output)

    def _finish(self, item: _Item, status: Snapshot | None = None) -> bool:
        """Record a finished job; return True when it should be submitted again."""
        assert item.job is not None and item.record is not None
        record = item.record
        ok, value = jobs.outcome(item.job, record, status)
        if ok and item.attached and not _appears(item.output):
            # The job of an earlier run finished, but its output is gone: the workflow removes the
            # outputs of an interrupted rule before running it again. Run it again (a training run
            # resumes from its checkpoints, so this costs little).
            record.end_attempt("output_lost")
            write_record(item.output, self.folder, record)
            log.warning("job %s from an earlier run finished, but %s is gone: submitting again", record.job_id,
                        item.output)
            item.attempts = 0
            return True
        if ok:
            item.result, record.state = value, "succeeded"
            write_record(item.output, self.folder, record)
            return False
        kind = jobs.classify(item.job, record, value, status)
        record.end_attempt(kind)
        write_record(item.output, self.folder, record)
        if item.attached:
            log.warning("job %s from an earlier run failed (%s): resubmitting", record.job_id, kind)
            item.attempts = 0
            return True
        if kind in ("oom", "timeout") and item.attempts < self.max_attempts:
            log.warning("job %s hit %s: resubmitting with more memory and time", record.job_id, kind)
            return True
        item.error = (
            f"{item.output}: job {record.job_id} failed ({kind}) on attempt {record.attempt} "
            f"[{item.attempts} of at most {self.max_attempts} in this run]; log: {item.job.paths.stderr}\n{value}"
        )
        return False

    def cancel(self, items: list[_Item]) -> None:
        records = [i.record for i in items if i.record is not None]
        jobs.cancel(records)
        for item in items:
            assert item.record is not None
            item.record.end_attempt("cancelled", state="cancelled")
            write_record(item.output, self.folder, item.record)
        log.warning("interrupted: cancelled %d job(s)", len(records))


def _appears(path: Path, wait_s: float = 10.0) -> bool:
    """Whether ``path`` exists, allowing a shared filesystem ``wait_s`` to show it."""
    deadline = time.monotonic() + wait_s
    while not path.exists():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)
    return True


@contextlib.contextmanager
def _clean_submission_env() -> Iterator[None]:
    """submitit's clean_env (no SLURM_* of an enclosing job leaks into the new one), except
    SLURM_CONF: it only says where the cluster's config lives, and sbatch fails without it on
    sites that set it."""
    keep = {k: os.environ[k] for k in ("SLURM_CONF",) if k in os.environ}
    with submitit.helpers.clean_env():
        os.environ.update(keep)
        try:
            yield
        finally:
            for k in keep:
                os.environ.pop(k, None)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Within the main thread, treat SIGTERM like Ctrl-C so that cleanup runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
