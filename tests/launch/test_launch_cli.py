"""``python -m aloe.launch status|cancel``: what an admin runs to see and stop what the pipeline
submitted. ``scancel`` here is a stand-in that logs its arguments (the real one is exercised in
tests/slurm)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

from aloe.io import write_json
from aloe.launch.record import JobRecord, read_record, record_path


def _record(results: Path, stage: str, name: str, job_id: str, state: str) -> Path:
    output = results / "metrics" / name
    record = JobRecord(call="c", cluster="slurm", folder=str(results / "jobs" / stage), job_id=job_id, num_tasks=1,
                       attempt=1, resources={}, state=state, output=str(output))
    write_json(record_path(output, results / "jobs" / stage), dataclasses.asdict(record))
    return output


def test_cancel_stops_exactly_the_jobs_in_flight(tmp_path: Path) -> None:
    results, calls = tmp_path / "results", tmp_path / "calls.log"
    running = _record(results, "probe", "lp.json", "4242", "submitted")
    queued = _record(results, "align", "result.json", "4243_1", "submitted")
    done = _record(results, "probe", "knn.json", "4100", "succeeded")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scancel").write_text(f'#!/bin/sh\necho "scancel $@" >> {calls}\n')
    (bin_dir / "scancel").chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    status = subprocess.run([sys.executable, "-m", "aloe.launch", "status", str(results)], env=env,
                            capture_output=True, text=True, check=True)
    assert len(status.stdout.splitlines()) == 3 and "3 job record(s), 2 in flight" in status.stderr
    subprocess.run([sys.executable, "-m", "aloe.launch", "cancel", str(results)], env=env, capture_output=True,
                   text=True, check=True)
    assert calls.read_text().split() == ["scancel", "4243_1", "4242"] or calls.read_text().split() == [
        "scancel", "4242", "4243_1"]  # one scancel, only the jobs in flight
    assert read_record(running, results / "jobs" / "probe").state == "cancelled"
    assert read_record(queued, results / "jobs" / "align").history[-1]["outcome"] == "cancelled"
    assert read_record(done, results / "jobs" / "probe").state == "succeeded"
