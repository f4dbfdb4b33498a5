"""One status poller per workflow, on the real cluster: however many processes wait on jobs, SLURM
is asked by one of them at most once per interval, and the others read its answer
(``aloe.launch.poller``). ``squeue`` and ``sacct`` are counted through PATH: a script of the same
name logs each call and execs the real tool."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aloe.launch.poller import FINISH_POLL_S, SlurmStatus
from aloe.launch.record import read_record

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
WAITER = str(ROOT / "tests" / "launch_waiter.py")


def _counting_path(bin_dir: Path, calls: Path) -> str:
    """A PATH whose squeue and sacct log "<tool> <args>" to ``calls``, then run the real one."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for tool in ("squeue", "sacct"):
        real = shutil.which(tool)
        assert real is not None, tool
        (bin_dir / tool).write_text(f'#!/bin/sh\necho "{tool} $*" >> {calls}\nexec {real} "$@"\n')
        (bin_dir / tool).chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _calls(calls: Path, tool: str) -> list[str]:
    lines = calls.read_text().splitlines() if calls.exists() else []
    return [line for line in lines if line.split()[0] == tool]


def _wait_all(work: Path, calls: Path, fn: str, kwargs: list[dict], resources: dict) -> list[dict]:
    """One waiting process per job (as Snakemake runs one per rule), all sharing one status file;
    each one's printed outcome."""
    env = {**os.environ, "PATH": _counting_path(work / "bin", calls),  # the slurm fixture set SLURM_CONF
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, WAITER, "slurm_jobfns", fn, json.dumps(kw), str(work / f"out{k}"),
                               json.dumps(resources), str(work / "jobs"), str(work / "slurm_status.json"), "slurm"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for k, kw in enumerate(kwargs)]
    outcomes = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        outcomes.append(json.loads(out.splitlines()[-1]))
    return outcomes


@pytest.mark.parametrize("waiters", [1, 6])
def test_waiting_processes_share_the_polls(slurm, tmp_path, waiters):
    """With an hour between polls, jobs that return are seen leaving the queue through polls
    FINISH_POLL_S apart at most, one for all waiting processes however many there are; sacct is
    only the poller's call for the jobs that left, never submitit's per process."""
    calls = tmp_path / "calls.log"
    resources = {"cpus_per_task": 1, "mem_gb": 0.5, "timeout_min": 5, "status_interval_s": 3600}
    kwargs = [{"seconds": 2, "value": 10 + k} for k in range(waiters)]
    start = time.monotonic()
    outcomes = _wait_all(tmp_path, calls, "nap", kwargs, resources)
    elapsed = time.monotonic() - start
    assert outcomes == [{"result": 10 + k} for k in range(waiters)]
    records = [read_record(tmp_path / f"out{k}", tmp_path / "jobs") for k in range(waiters)]
    status = json.loads((tmp_path / "slurm_status.json").read_text())
    assert status["failures"] == 0 and status["next_at"] >= status["taken_at"] + 3600
    assert not set(status["live"]) & {r.job_id for r in records}  # the launchers returned once SLURM let go
    squeues, saccts = _calls(calls, "squeue"), _calls(calls, "sacct")
    assert 2 <= len(squeues) <= 1 + elapsed / FINISH_POLL_S, (len(squeues), elapsed)
    assert all(c.startswith("sacct -X -n -P -o JobID,State -j ") for c in saccts) and len(saccts) < len(squeues)


def test_failed_jobs_are_seen_in_the_shared_answer(slurm, tmp_path):
    """Jobs that fail leave the queue; the waiting processes learn it, and the end state that
    classifies the failure, from the shared answer: at most one squeue per interval for all of
    them, sacct only from the poller (one call for the jobs that left), never submitit's own."""
    calls, interval = tmp_path / "calls.log", 2.0
    resources = {"cpus_per_task": 1, "mem_gb": 0.5, "timeout_min": 5, "max_attempts": 1,
                 "status_interval_s": interval}
    kwargs = [{"seconds": 6, "message": f"bad shard {k}"} for k in range(4)]
    start = time.monotonic()
    outcomes = _wait_all(tmp_path, calls, "fail_after", kwargs, resources)
    elapsed = time.monotonic() - start
    for k, outcome in enumerate(outcomes):
        assert "failed (error) on attempt 1" in outcome["error"] and f"bad shard {k}" in outcome["error"], outcome
    records = [read_record(tmp_path / f"out{k}", tmp_path / "jobs") for k in range(4)]
    assert [r.history[-1]["outcome"] for r in records] == ["error"] * 4
    status = json.loads((tmp_path / "slurm_status.json").read_text())
    assert {r.job_id: status["ended"][r.job_id]["state"] for r in records} == {r.job_id: "FAILED" for r in records}
    squeues, saccts = _calls(calls, "squeue"), _calls(calls, "sacct")
    assert 2 <= len(squeues) <= 1 + elapsed / interval, (len(squeues), elapsed)
    assert saccts and all(c.startswith("sacct -X -n -P -o JobID,State -j ") for c in saccts), saccts
    assert len(saccts) < len(squeues)


def test_a_failing_squeue_backs_off_and_keeps_the_last_answer(slurm, tmp_path, monkeypatch):
    """squeue fails (here: the controller is down, a configuration naming a port nobody listens on):
    the wait doubles per failure up to the cap, the last good answer stays; while another process
    holds the lock nobody polls; a next poll set impossibly far ahead (a clock set back) is due."""
    calls = tmp_path / "calls.log"
    monkeypatch.setenv("PATH", _counting_path(tmp_path / "bin", calls))
    status = SlurmStatus(tmp_path / "status.json", interval_s=0.05, backoff_max_s=0.3)
    first = status.current()
    assert first is not None and len(_calls(calls, "squeue")) == 1

    down = tmp_path / "down" / "slurm.conf"
    down.parent.mkdir()
    lines = [f"SlurmctldPort={_closed_port()}" if line.startswith("SlurmctldPort=") else line
             for line in slurm.conf.read_text().splitlines()]
    down.write_text("\n".join([*lines, "MessageTimeout=1", ""]))  # fail at once rather than after 10 s
    monkeypatch.setenv("SLURM_CONF", str(down))
    delays: dict[int, float] = {}
    for _ in range(2000):
        snapshot = status.current()
        assert snapshot == first  # a failed poll changes nothing that was known
        data = json.loads(status.path.read_text())
        delays.setdefault(data["failures"], data["next_at"] - data["tried_at"])
        if data["failures"] == 4:
            break
        time.sleep(0.01)
    assert data["failures"] == 4 and "Unable to contact slurm controller" in data["error"], data
    for failures, base in ((1, 0.1), (2, 0.2), (3, 0.3), (4, 0.3)):  # 0.05 x 2**n, capped at 0.3
        assert base <= delays[failures] <= base * 1.2 + 1e-9, delays
    assert len(_calls(calls, "squeue")) == 1 + 4

    monkeypatch.setenv("SLURM_CONF", slurm.env["SLURM_CONF"])
    with open(status.lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process is polling
        time.sleep(0.4)  # past next_at
        assert status.current() == first and len(_calls(calls, "squeue")) == 1 + 4
    fresh = status.current()
    assert fresh is not None and fresh.taken_at > first.taken_at and len(_calls(calls, "squeue")) == 1 + 5
    data = json.loads(status.path.read_text())
    assert data["failures"] == 0 and data["error"] == ""

    # A next poll further off than any wait this poller sets: the clock was set back. Poll now.
    status.path.write_text(json.dumps({**data, "next_at": data["next_at"] + 86400}))
    assert status.current().taken_at > fresh.taken_at and len(_calls(calls, "squeue")) == 1 + 6
