"""Packing short calls: several waiting calls with equal resources share one allocation.

A stage whose resources set ``pack_work_min`` is packed on SLURM (on the local executor only
with ``pack_local``, :func:`packed`). Its waiting processes (one per
Snakemake job) do not submit their call themselves: each drops a request into the workflow's
spool folder (``<jobs>/spool``, beside the shared SLURM status file) and waits. Whichever waiting
process gets the spool's lock runs a broker round (:func:`broker_round`) every poll:

- requests are grouped by (executor, stage log folder, resources without the job name);
- each group's requests, in arrival order, are cut into packs of at most ``pack_max_work_min``
  minutes of expected work (default: half the time limit; :func:`pack_bins`); full packs (the
  next request would not fit, or the maximum is reached) go out at once;
- the last, partial pack goes out once its group has had no new request for ``pack_wait_s``
  seconds (default 120: nothing else is ready), or, when it already holds ``pack_work_min``
  minutes of work, once its oldest request has waited that long (:func:`due_bins`). So no
  allocation carries less than ``pack_work_min`` unless nothing else was ready;
- the packs of one group and round are ONE submission (a job array on SLURM; each array task is
  one allocation running its pack's calls one after another, :func:`run_pack`).

The broker writes each item's job record (``aloe.launch.record``) with ``pack`` set: the request
it answers, where the item's own result and log go, and the item's place in the pack. The
waiting process then treats the pack job like its own job, so re-attach after a Snakemake crash
works as for any job. Each item's outcome is its own result file: an item that raises fails only
its own output; an item whose pack was killed (time limit, OOM) is retried alone, outside the
spool, with escalated resources. Every output keeps its own Snakemake job, so its staleness is
its own too.

A request whose owner process is gone (same host, pid dead: Snakemake was killed before the
broker submitted it) is dropped; the restarted workflow asks again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import pickle
import socket
import time
import traceback
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from aloe.io import read_json, write_bytes, write_json

log = logging.getLogger(__name__)

SPOOL_DIR = "spool"
DEFAULT_WAIT_S = 120.0
BROKER_INTERVAL_S = 2.0
PACK_KEYS = ("pack_work_min", "pack_max_work_min", "pack_wait_s", "pack_local", "expected_min")


@dataclasses.dataclass
class PackRequest:
    """One waiting call, as the owner process writes it into the spool."""

    request: str  # unique id; the record the broker writes names it
    call: str  # call key (aloe.launch.record.call_key)
    output: str
    log_dir: str  # the stage's log folder: records, pack results and submitit logs go there
    cluster: str  # slurm | local
    resources: dict[str, Any]  # escalation 0
    expected_min: float
    created: float
    host: str
    pid: int
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def call_file(self) -> Path:
        """The pickled (function, kwargs), written by the owner, read by the pack job."""
        return Path(self.log_dir) / "packs" / f"{self.request}.call.pkl"


def packed(resources: dict[str, Any], cluster: str) -> bool:
    """Whether a stage's calls are packed on executor ``cluster``: on SLURM when the stage sets
    ``pack_work_min``; on the local executor only with ``pack_local`` too. Locally there is no
    allocation or scheduler to spare, and a pack would run calls one after another that the
    machine's cores run side by side (the rehearsal on 2 cores: a 3 s call spent 12 s waiting
    for its pack)."""
    if resources.get("pack_work_min") is None:
        return False
    return cluster == "slurm" or (cluster == "local" and bool(resources.get("pack_local")))


def job_resources(resources: dict[str, Any]) -> dict[str, Any]:
    """``resources`` without the packing keys (what one allocation asks for)."""
    return {k: v for k, v in resources.items() if k not in PACK_KEYS}


def max_work_min(resources: dict[str, Any]) -> float:
    from aloe.launch.resources import DEFAULT_TIMEOUT_MIN

    return float(resources.get("pack_max_work_min", 0.5 * float(resources.get("timeout_min", DEFAULT_TIMEOUT_MIN))))


def pack_bins(work: Sequence[float], work_max: float) -> list[list[int]]:
    """Indices of ``work`` (expected minutes per call, in arrival order) cut into packs of at most
    ``work_max`` (a call longer than that is a pack of its own). Every pack but the last is full:
    the next call would not fit."""
    bins: list[list[int]] = []
    current: list[int] = []
    total = 0.0
    for i, w in enumerate(work):
        if current and total + w > work_max:
            bins.append(current)
            current, total = [], 0.0
        current.append(i)
        total += w
    if current:
        bins.append(current)
    return bins


def due_bins(created: Sequence[float], work: Sequence[float], resources: dict[str, Any], now: float
             ) -> list[list[int]]:
    """The packs of one group to submit now: every full pack; the last one once the group has had
    no new call for ``pack_wait_s`` (nothing else is ready), or, when it holds ``pack_work_min``
    minutes of work, once its oldest call has waited that long."""
    bins = pack_bins(work, max_work_min(resources))
    if not bins:
        return []
    wait, last = float(resources.get("pack_wait_s", DEFAULT_WAIT_S)), bins[-1]
    total = sum(work[i] for i in last)
    quiet = now - max(created) >= wait
    enough = total >= float(resources["pack_work_min"]) and now - created[last[0]] >= wait
    return bins if quiet or enough or total >= max_work_min(resources) else bins[:-1]


def spool_dir(status_file: Path) -> Path:
    return status_file.parent / SPOOL_DIR


def write_request(spool: Path, req: PackRequest, fn: Callable[..., Any], kwargs: dict[str, Any]) -> None:
    """The call first, then the request that points at it: a broker never sees a request without its call."""
    write_bytes(req.call_file, pickle.dumps((fn, kwargs)))
    write_json(spool / f"{req.request}.request.json", dataclasses.asdict(req))


def withdraw(spool: Path, req: PackRequest, *, drop_call: bool = False) -> None:
    """Remove a request from the spool (and its call file, when it will not run)."""
    with contextlib.suppress(FileNotFoundError):
        (spool / f"{req.request}.request.json").unlink()
    if drop_call:
        req.call_file.unlink(missing_ok=True)


def new_request(**fields: Any) -> PackRequest:
    return PackRequest(request=uuid.uuid4().hex, created=time.time(), host=socket.gethostname(), pid=os.getpid(),
                       **fields)


def _read_requests(spool: Path) -> list[PackRequest]:
    out = []
    for path in sorted(spool.glob("*.request.json")):
        try:
            out.append(PackRequest(**read_json(path)))
        except (OSError, ValueError, TypeError, KeyError) as err:  # half-removed by another broker: next round
            log.warning("spool: skipping unreadable request %s (%s)", path.name, err)
    return out


def _owner_alive(req: PackRequest) -> bool:
    if req.host != socket.gethostname():
        return True  # cannot tell: keep it
    try:
        os.kill(req.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def _locked(spool: Path) -> Iterator[bool]:
    spool.mkdir(parents=True, exist_ok=True)
    with open(spool / "broker.lock", "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def broker_round(spool: Path, submit: Callable[[list[list[PackRequest]], str, dict[str, Any], Path], None],
                 now: float | None = None) -> int:
    """One broker round if this process gets the spool's lock (else nothing): submit every pack
    that is due through ``submit(packs, cluster, resources, log_dir)``, which writes the items'
    records; their requests are then removed. Returns how many requests went out.

    However many processes wait, a round runs at most once per ``BROKER_INTERVAL_S`` (the mtime of
    ``broker.stamp`` says when the last one ran; a ``stat`` is all a waiting process costs the
    shared filesystem in between)."""
    stamp = spool / "broker.stamp"
    with contextlib.suppress(FileNotFoundError):
        if time.time() - stamp.stat().st_mtime < BROKER_INTERVAL_S:
            return 0
    with _locked(spool) as mine:
        if not mine:
            return 0
        stamp.touch()
        now = time.time() if now is None else now
        groups: dict[str, list[PackRequest]] = {}
        for req in _read_requests(spool):
            if not _owner_alive(req):
                log.warning("spool: dropping the request for %s: its process %d is gone", req.output, req.pid)
                withdraw(spool, req, drop_call=True)
                continue
            res = {k: v for k, v in req.resources.items() if k != "name"}
            key = json.dumps([req.cluster, req.log_dir, res], sort_keys=True)
            groups.setdefault(key, []).append(req)
        sent = 0
        for group in groups.values():
            group.sort(key=lambda r: (r.created, r.call))
            res = group[0].resources
            due = due_bins([r.created for r in group], [r.expected_min for r in group], res, now)
            if not due:
                continue
            packs = [[group[i] for i in b] for b in due]
            submit(packs, group[0].cluster, res, Path(group[0].log_dir))
            for pack in packs:
                for req in pack:
                    withdraw(spool, req)
                    sent += 1
        return sent


@dataclasses.dataclass
class PackItem:
    """One call of a pack, as the pack job runs it."""

    call_file: str
    result: str  # pickle of ("success", value) or ("error", traceback text)
    log: str  # the item's stdout and stderr
    output: str


def item_files(log_dir: Path, request: str) -> tuple[Path, Path]:
    """(result pickle, log) of one packed item."""
    folder = log_dir / "packs"
    return folder / f"{request}.result.pkl", folder / f"{request}.log"


def run_pack(items: list[PackItem]) -> list[str]:
    """The job of one allocation: run each item's call in turn, each into its own result and log
    file; an item that raises does not stop the others. Returns each item's outcome."""
    outcomes = []
    for k, item in enumerate(items):
        Path(item.log).parent.mkdir(parents=True, exist_ok=True)
        print(f"pack item {k + 1}/{len(items)}: {item.output} (log: {item.log})", flush=True)
        with open(item.log, "a", buffering=1) as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
            try:
                with open(item.call_file, "rb") as g:
                    fn, kwargs = pickle.load(g)  # written by the owner process of this workflow
                result = ("success", fn(**kwargs))
            except Exception:  # recorded as this item's failure; the pack goes on
                text = traceback.format_exc()
                f.write(text)
                result = ("error", text)
        write_bytes(Path(item.result), pickle.dumps(result))
        outcomes.append(result[0])
    return outcomes


def read_item_result(path: Path) -> tuple[str, Any] | None:
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except FileNotFoundError:
        return None
