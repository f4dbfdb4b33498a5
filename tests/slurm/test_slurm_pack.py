"""Packed short jobs on the real cluster (``aloe.launch.pack``): waiting processes, one per output
as Snakemake runs them, share one allocation; an item that raises fails only its own output; an
item whose pack hits the time limit is retried alone with escalated resources; a waiting process
killed while its pack runs is replaced by one that re-attaches, without a new sbatch."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from aloe.launch.record import read_record

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
WAITER = str(ROOT / "tests" / "launch_waiter.py")
BASE = {"partition": "main", "cpus_per_task": 1, "mem_gb": 0.5, "status_interval_s": 2,
        "pack_work_min": 30, "pack_max_work_min": 30, "pack_wait_s": 600}


def _env(work: Path) -> dict[str, str]:
    """sbatch logs each call to ``work/sbatch.log``, then runs the real one."""
    bin_dir = work / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    real = shutil.which("sbatch")
    assert real is not None
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\necho "sbatch $*" >> {work / "sbatch.log"}\nexec {real} "$@"\n')
    (bin_dir / "sbatch").chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE), os.environ.get("PYTHONPATH", "")])}


def _start(work: Path, k: int, fn: str, kwargs: dict, resources: dict, minutes: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, WAITER, "slurm_jobfns", fn, json.dumps(kwargs), str(work / f"out{k}"),
                             json.dumps(resources), str(work / "jobs" / "probe"), str(work / "jobs" / "status.json"),
                             "slurm", str(minutes)], env=_env(work), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _wait_for(what, check, limit_s: float = 120.0) -> None:
    deadline = time.monotonic() + limit_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _requests(work: Path) -> int:
    return len(list((work / "jobs" / "spool").glob("*.request.json")))


def _outcome(proc: subprocess.Popen) -> tuple[dict, str]:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.splitlines()[-1]), err


def _accounted(slurm, *job_ids: str, limit_s: float = 60.0) -> dict[str, dict[str, str]]:
    """sacct rows of ``job_ids`` once each shows an end state (slurmdbd records them a moment late)."""
    deadline = time.monotonic() + limit_s
    while True:
        rows = {r["JobID"]: r for r in slurm.sacct(*job_ids)}
        ended = [r["State"].split()[0] in ("COMPLETED", "TIMEOUT", "FAILED", "CANCELLED") for r in rows.values()]
        if len(rows) == len(job_ids) and all(ended):
            return rows
        assert time.monotonic() < deadline, rows
        time.sleep(0.5)


def _sbatch_calls(work: Path) -> int:
    path = work / "sbatch.log"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_one_allocation_runs_the_pack_and_failures_stay_with_their_item(slurm, tmp_path):
    resources = {**BASE, "timeout_min": 1, "signal_delay_s": 30, "max_attempts": 3}
    calls = [("nap", {"seconds": 1, "value": 1}),
             ("fail_after", {"seconds": 0, "message": "bad shard 9"}),
             ("slow_first", {"counter": str(tmp_path / "slow"), "seconds": 300, "value": 3})]
    procs = []
    for k, (fn, kwargs) in enumerate(calls):  # one after another: the pack runs them in arrival order
        procs.append(_start(tmp_path, k, fn, kwargs, resources, 10))
        if k < len(calls) - 1:
            _wait_for("the request", lambda: _requests(tmp_path) == k + 1)
    (a, _), (b, _), (c, c_log) = [_outcome(p) for p in procs]
    assert a == {"result": 1} and c == {"result": 3}
    assert "failed (error) on attempt 1" in b["error"] and "bad shard 9" in b["error"], b
    records = [read_record(tmp_path / f"out{k}", tmp_path / "jobs" / "probe") for k in range(3)]
    pack_job = records[0].job_id
    assert records[1].job_id == pack_job and [r.state for r in records] == ["succeeded", "failed", "succeeded"]
    assert records[1].pack == {**records[1].pack, "index": 1, "size": 3}
    # the third item ran out of time with its pack, and was retried alone with twice the limit
    assert records[2].history == [{"attempt": 1, "job_id": pack_job, "outcome": "timeout",
                                   "resources": records[0].resources}]
    assert records[2].pack is None and records[2].resources["timeout_min"] == 2
    assert "retried" in c_log or "resubmitting" in c_log
    rows = _accounted(slurm, pack_job, records[2].job_id)
    # SLURM's warning signal before the limit ends a plain submitit job ("timed-out"), or the limit does
    assert rows[pack_job]["State"] in ("COMPLETED", "TIMEOUT") and rows[records[2].job_id]["State"] == "COMPLETED"
    assert rows[pack_job]["JobName"] == "aloe.pack.probe", rows  # a pack of several calls of no one rule
    assert _sbatch_calls(tmp_path) == 2  # the pack, then the retry alone


def test_a_restarted_waiter_reattaches_to_its_pack(slurm, tmp_path):
    resources = {**BASE, "timeout_min": 5}
    kwargs = [{"seconds": 20, "value": 10 + k, "output": str(tmp_path / f"out{k}")} for k in range(2)]
    procs = [_start(tmp_path, k, "nap_into", kw, resources, 15) for k, kw in enumerate(kwargs)]
    records = lambda: [read_record(tmp_path / f"out{k}", tmp_path / "jobs" / "probe") for k in range(2)]  # noqa: E731
    _wait_for("the pack", lambda: all(r is not None and r.pack for r in records()))
    procs[0].send_signal(signal.SIGKILL)  # Snakemake's rule process dies while the pack runs
    procs[0].wait()
    pack_job = records()[0].job_id
    again = _start(tmp_path, 0, "nap_into", kwargs[0], resources, 15)
    (first, err), (second, _) = _outcome(again), _outcome(procs[1])
    assert first == {"result": 10} and second == {"result": 11}
    assert f"re-attached to job {pack_job}" in err
    assert [r.job_id for r in records()] == [pack_job, pack_job] and _sbatch_calls(tmp_path) == 1
    assert _accounted(slurm, pack_job)[pack_job]["State"] == "COMPLETED"
