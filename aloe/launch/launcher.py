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
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import submitit

from aloe.launch import jobs, pack
from aloe.launch.poller import STATUS_FILE, SlurmStatus, Snapshot
from aloe.launch.record import JobRecord, call_key, now_iso, read_record, write_record
from aloe.launch.resources import check_resources, escalate, status_settings
from aloe.launch.submission import ExecutorName, clean_submission_env, make_executor, resolve_executor, submit_packs

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
    expected_min: float = 1.0  # expected work, for packing
    request: pack.PackRequest | None = None  # the spool request waiting to be packed
    alone: bool = False  # retried outside a pack (after its pack ran out of memory or time)


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
    expected_min: float | None = None,
) -> Any:
    """Run ``fn(**kwargs)`` as a job that produces ``output``; return its result.

    ``fn`` must be picklable: a module-level function or a ``submitit.helpers.Checkpointable``
    instance (passed to submitit unchanged, so it is requeued on preemption/timeout). ``fn``
    writes ``output`` itself; the launcher writes only its job record (``record.record_path``). ``call`` identifies
    the call for re-attaching (default: ``record.call_key(fn, kwargs)``); pass one when ``fn``
    carries its arguments inside, as a Checkpointable does. ``status_file``, ``expected_min``: see
    ``launch_many``.
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
        expected_mins=None if expected_min is None else [expected_min],
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
    expected_mins: Sequence[float] | None = None,
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

    With ``resources["pack_work_min"]`` the calls are packed with other waiting calls of equal
    resources (``aloe.launch.pack``; its spool lies beside ``status_file``): ``expected_mins``
    gives each call's expected work in minutes (default ``resources["expected_min"]``, else 1).
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
    default_min = float(res.get("expected_min", 1.0))
    mins = list(expected_mins) if expected_mins is not None else [default_min] * len(paths)
    items = [_Item(p, dict(kw), k, expected_min=m) for p, kw, k, m in zip(paths, kwargs_list, keys, mins)]
    status_path = None if status_file is None else Path(status_file).absolute()
    run = _Run(fn, res, cluster, Path(log_dir).absolute(), poll_s, status_path)
    with _sigterm_as_interrupt():
        try:
            run.execute(items)
        except KeyboardInterrupt:
            run.withdraw(items)
            live = [i for i in items if i.record is not None and i.record.state == "submitted" and i.request is None]
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
        self.packing = pack.packed(resources, cluster)
        self.spool = pack.spool_dir(status_file or folder / STATUS_FILE)
        self.max_attempts = int(resources.get("max_attempts", 3))
        default_width = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        self.local_width = int(resources.get("array_parallelism", default_width))

    def execute(self, items: list[_Item]) -> None:
        pending, active, waiting = [], [], []
        for item in items:
            (active if self._attach(item) else pending).append(item)
        while pending or active or waiting:
            if self.packing:
                for item in [i for i in pending if not i.alone]:
                    self._request(item)
                    waiting.append(item)
                pending = [i for i in pending if i.alone]
            if waiting:
                pack.broker_round(self.spool, submit_packs)
                picked = [i for i in waiting if self._picked_up(i)]
                waiting = [i for i in waiting if i not in picked]
                active += picked
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
                if not self._is_done(item, status):
                    still.append(item)
                elif self._finish(item, status):
                    pending.append(item)
            active = still
            if active or waiting:
                time.sleep(self.poll_s)

    def _is_done(self, item: _Item, status: Snapshot | None) -> bool:
        assert item.job is not None and item.record is not None
        if item.record.pack and Path(item.record.pack["result"]).exists():  # written atomically
            return True
        return jobs.is_done(item.job, item.record, status, item.returned_at, self.status.interval_s)

    def _request(self, item: _Item) -> None:
        """Ask the broker to pack this call (``aloe.launch.pack``)."""
        req = pack.new_request(call=item.key, output=str(item.output), log_dir=str(self.folder), cluster=self.cluster,
                               resources=self.resources, expected_min=item.expected_min,
                               history=list(item.record.history) if item.record else [])
        pack.write_request(self.spool, req, self.fn, item.kwargs)
        item.request = req
        log.info("waiting to be packed with other calls: %s (expected work %.1f min)", item.output, item.expected_min)

    def _picked_up(self, item: _Item) -> bool:
        """Whether the broker has submitted this call's request (its record names the request)."""
        record = read_record(item.output, self.folder)
        assert item.request is not None
        if record is None or not record.pack or record.pack.get("request") != item.request.request:
            return False
        item.record, item.job, item.attached, item.returned_at = record, jobs.rebuild(record), False, None
        item.attempts += 1
        item.request = None
        log.info("packed: item %d of %d in job %s for %s; its log: %s", record.pack["index"] + 1, record.pack["size"],
                 record.job_id, item.output, record.pack["log"])
        return True

    def withdraw(self, items: list[_Item]) -> None:
        """Take back the requests of calls not yet packed (on interrupt)."""
        for item in items:
            if item.request is not None:
                pack.withdraw(self.spool, item.request, drop_call=True)

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
            with clean_submission_env():
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
        ok, value = self._outcome(item, status)
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
            item.alone = True
            return True
        item.error = (
            f"{item.output}: job {record.job_id} failed ({kind}) on attempt {record.attempt} "
            f"[{item.attempts} of at most {self.max_attempts} in this run]; log: {item.job.paths.stderr}\n{value}"
        )
        return False

    def _outcome(self, item: _Item, status: Snapshot | None) -> tuple[bool, Any]:
        """A packed call's outcome is its own result file, not the pack job's."""
        assert item.job is not None and item.record is not None
        info = item.record.pack
        if not info:
            return jobs.outcome(item.job, item.record, status)
        got = pack.read_item_result(Path(info["result"]))
        if got is not None:
            return got[0] == "success", got[1]
        _, text = jobs.outcome(item.job, item.record, status)
        return False, (f"pack job {item.record.job_id} ended before item {info['index'] + 1} of {info['size']} "
                       f"had a result (item log: {info['log']})\n{text}")

    def cancel(self, items: list[_Item]) -> None:
        """Cancel the jobs of ``items``; a pack that runs other calls too is left running (a restart
        re-attaches to it)."""
        shared = [i for i in items if i.record is not None and i.record.pack and i.record.pack["size"] > 1]
        if shared:
            log.warning("interrupted: %d call(s) share their pack job with other calls: left running", len(shared))
        items = [i for i in items if i not in shared]
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
