"""Launched workflow stages go out by name: the process that submits and waits (one per job in
flight on the submit host) never imports the stage's module, and the job runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from aloe.launch import read_record
from aloe.launch.record import call_key
from aloe.pipeline import run_stage

WAITER = """
import json, sys
from aloe.pipeline import run_stage
kwargs = {"depths": ["L", "L/3"], "num_layers": 12}
result = run_stage("aloe.align.stages:resolve_depths", kwargs,
                   launch={"output": sys.argv[1], "resources": {}, "executor": "local", "log_dir": sys.argv[2]})
print(json.dumps({"result": result, "torch_imported": "torch" in sys.modules}))
"""


def test_stage_runs_in_the_job_and_the_waiter_stays_small(tmp_path: Path) -> None:
    out, logs = tmp_path / "depths.json", tmp_path / "logs"
    done = subprocess.run([sys.executable, "-c", WAITER, str(out), str(logs)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer == {"result": [4, 12], "torch_imported": False}  # aloe.align.stages imports torch
    record = read_record(out, logs)
    kwargs = {"depths": ["L", "L/3"], "num_layers": 12}
    assert record.state == "succeeded" and record.call == call_key("aloe.align.stages:resolve_depths", kwargs)
    assert record.call != call_key("aloe.align.stages:resolve_depths", dict(kwargs, num_layers=24))


def test_a_bad_stage_name_fails_before_anything_is_submitted(tmp_path: Path) -> None:
    launch = {"output": tmp_path / "x.json", "resources": {}, "executor": "local", "log_dir": tmp_path / "logs"}
    with pytest.raises(ValueError, match="no module aloe.no_such_module"):
        run_stage("aloe.no_such_module:fn", {}, launch=launch)
    with pytest.raises(ValueError, match="must be 'aloe.module:function'"):
        run_stage("os:system", {}, launch=launch)
    assert not (tmp_path / "logs").exists()
