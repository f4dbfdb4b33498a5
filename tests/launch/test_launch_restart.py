"""Orchestrator restarts and interrupts: the waiting side runs in its own process (as a Snakemake
rule would), jobs run on submitit's LocalExecutor, and the test signals or kills the waiter."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import launch_jobfns as jobfns
import pytest

from aloe.launch import launch, launch_many, read_record
from aloe.launch.jobs import local_alive

HERE = Path(__file__).resolve().parent
WIDE = {"array_parallelism": 4}  # all gated jobs must run at once, whatever the CPU count


@pytest.fixture(autouse=True)
def job_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("NO_ALBUMENTATIONS_UPDATE", "1")


def _gated_calls(tmp_path: Path, n: int) -> tuple[list[dict], list[Path]]:
    kwargs = [
        {
            "value": 10 + i,
            "counter": str(tmp_path / f"count_{i}"),
            "started": str(tmp_path / f"started_{i}"),
            "gate": str(tmp_path / "gate"),
            "output": str(tmp_path / f"out_{i}.json"),
        }
        for i in range(n)
    ]
    return kwargs, [tmp_path / f"out_{i}.json" for i in range(n)]


def _start_orchestrator(tmp_path: Path, kwargs: list[dict], outputs: list[Path], detach: bool) -> subprocess.Popen:
    args = {
        "fn": "gated",
        "resources": WIDE,
        "kwargs_list": kwargs,
        "outputs": [str(o) for o in outputs],
        "log_dir": str(tmp_path / "logs"),
        "detach": detach,
    }
    # Output to a file, not a pipe: the detached job inherits it and outlives the orchestrator.
    with open(tmp_path / "orchestrator.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, str(HERE / "launch_orchestrator.py"), json.dumps(args)], stdout=log, stderr=log
        )


def _wait_until(condition, what: str, limit_s: float = 30.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _pid_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def _lines(path: str) -> int:
    return len(Path(path).read_text().splitlines()) if Path(path).exists() else 0


def _open_gate_later(gate: Path, delay_s: float = 0.5) -> None:
    threading.Timer(delay_s, gate.touch).start()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_cancels_the_submitted_job(tmp_path: Path, sig: signal.Signals) -> None:
    kwargs, outputs = _gated_calls(tmp_path, 1)
    orchestrator = _start_orchestrator(tmp_path, kwargs, outputs, detach=False)
    _wait_until(lambda: Path(kwargs[0]["started"]).exists(), "the job to start")
    task_pid = int(Path(kwargs[0]["started"]).read_text())
    record = read_record(outputs[0], tmp_path / "logs")
    assert local_alive(record.job_id, record.folder)
    orchestrator.send_signal(sig)
    assert orchestrator.wait(timeout=30) != 0
    _wait_until(lambda: _pid_gone(task_pid) and not local_alive(record.job_id, record.folder), "the job to die", 15)
    after = read_record(outputs[0], tmp_path / "logs")
    assert after.state == "cancelled" and after.history[-1]["outcome"] == "cancelled"
    assert not Path(kwargs[0]["gate"]).exists()  # the job died waiting, it was not released


def test_detach_leaves_jobs_running_and_a_restart_reattaches(tmp_path: Path) -> None:
    kwargs, outputs = _gated_calls(tmp_path, 4)
    # The first orchestrator runs three calls and is interrupted while they wait on the gate.
    orchestrator = _start_orchestrator(tmp_path, kwargs[:3], outputs[:3], detach=True)
    _wait_until(lambda: all(Path(k["started"]).exists() for k in kwargs[:3]), "three jobs to start")
    first = [read_record(o, tmp_path / "logs") for o in outputs[:3]]
    orchestrator.send_signal(signal.SIGINT)
    assert orchestrator.wait(timeout=30) != 0
    assert all(r.state == "submitted" and local_alive(r.job_id, r.folder) for r in first)
    # The restart asks for all four: three re-attach, only the fourth is submitted.
    _open_gate_later(Path(kwargs[0]["gate"]), 1.0)
    results = launch_many(
        jobfns.gated, kwargs, outputs=outputs, resources=WIDE, log_dir=tmp_path / "logs", executor="local", poll_s=0.05
    )
    assert results == [10, 11, 12, 13]
    assert [_lines(k["counter"]) for k in kwargs] == [1, 1, 1, 1]  # every job ran exactly once
    after = [read_record(o, tmp_path / "logs") for o in outputs]
    assert [a.job_id for a in after[:3]] == [r.job_id for r in first]
    assert all(a.state == "succeeded" and a.attempt == 1 for a in after)


def test_restart_after_crash_reattaches_to_the_finished_job(tmp_path: Path) -> None:
    kwargs, outputs = _gated_calls(tmp_path, 1)
    orchestrator = _start_orchestrator(tmp_path, kwargs, outputs, detach=False)
    _wait_until(lambda: Path(kwargs[0]["started"]).exists(), "the job to start")
    orchestrator.kill()  # SIGKILL: no cleanup, the job keeps running
    orchestrator.wait(timeout=30)
    submitted = read_record(outputs[0], tmp_path / "logs")
    Path(kwargs[0]["gate"]).touch()
    _wait_until(lambda: not local_alive(submitted.job_id, submitted.folder), "the job to finish")
    assert submitted.state == "submitted"
    value = launch(
        jobfns.gated,
        kwargs[0],
        output=outputs[0],
        resources={},
        log_dir=tmp_path / "logs",
        executor="local",
        poll_s=0.05,
    )
    assert value == 10 and _lines(kwargs[0]["counter"]) == 1
    after = read_record(outputs[0], tmp_path / "logs")
    assert (after.job_id, after.state, after.attempt) == (submitted.job_id, "succeeded", 1)


def test_a_finished_job_whose_output_was_removed_runs_again(tmp_path: Path) -> None:
    """What Snakemake does after a crash: it removes the outputs of interrupted rules before running
    them again, so a job that finished while nobody waited has lost its output."""
    kwargs, outputs = _gated_calls(tmp_path, 1)
    orchestrator = _start_orchestrator(tmp_path, kwargs, outputs, detach=False)
    _wait_until(lambda: Path(kwargs[0]["started"]).exists(), "the job to start")
    orchestrator.kill()
    orchestrator.wait(timeout=30)
    submitted = read_record(outputs[0], tmp_path / "logs")
    Path(kwargs[0]["gate"]).touch()
    _wait_until(lambda: not local_alive(submitted.job_id, submitted.folder), "the job to finish")
    outputs[0].unlink()
    value = launch(jobfns.gated, kwargs[0], output=outputs[0], resources={}, log_dir=tmp_path / "logs",
                   executor="local", poll_s=0.05)
    assert value == 10 and _lines(kwargs[0]["counter"]) == 2 and outputs[0].read_text() == "10"
    after = read_record(outputs[0], tmp_path / "logs")
    assert after.state == "succeeded" and after.job_id != submitted.job_id and after.attempt == 2
    assert [h["outcome"] for h in after.history] == ["output_lost"]
