"""Packing short calls (aloe.launch.pack) on submitit's LocalExecutor (``pack_local``; the real
SLURM drills are tests/slurm/test_slurm_pack.py): several waiting processes, as Snakemake runs one
per rule, drop requests into one spool; one broker packs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import launch_jobfns as jobfns
import pytest

from aloe.launch import launch, read_record
from aloe.launch.pack import due_bins, pack_bins

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
WAITER = str(ROOT / "tests" / "launch_waiter.py")


@pytest.fixture(autouse=True)
def job_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Job subprocesses import launch_jobfns by name: put this folder on their PYTHONPATH."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])))


def test_packs_fill_up_to_the_maximum_and_the_last_waits() -> None:
    assert pack_bins([10, 10, 10, 10, 10], 30) == [[0, 1, 2], [3, 4]]
    assert pack_bins([50, 20, 5], 30) == [[0], [1, 2]]  # a call over the maximum is a pack of its own
    assert pack_bins([], 30) == []
    res = {"pack_work_min": 20, "pack_max_work_min": 30, "pack_wait_s": 100}
    created, work = [0, 10, 20, 30, 40], [10, 10, 10, 10, 5]
    assert due_bins(created, work, res, now=50) == [[0, 1, 2]]  # the full pack goes, 15 min wait for more
    assert due_bins(created, work, res, now=140) == [[0, 1, 2], [3, 4]]  # quiet for 100 s: nothing else comes
    res["pack_work_min"] = 15
    assert due_bins(created, work, res, now=130) == [[0, 1, 2], [3, 4]]  # enough work, oldest waited 100 s
    assert due_bins(created, work, res, now=129) == [[0, 1, 2]]


def _waiters(tmp_path: Path, calls: list[tuple[str, dict, float]], resources: dict) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, WAITER, "launch_jobfns", fn, json.dumps(kw), str(tmp_path / f"out{k}"),
                               json.dumps(resources), str(tmp_path / "jobs" / "probe"),
                               str(tmp_path / "jobs" / "slurm_status.json"), "local", str(minutes)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for k, (fn, kw, minutes) in enumerate(calls)]
    outcomes = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        outcomes.append(json.loads(out.splitlines()[-1]))
    return outcomes


def test_waiting_calls_share_one_allocation_and_fail_alone(tmp_path: Path) -> None:
    counter = str(tmp_path / "count")
    calls = [("add", {"a": 1, "b": 2, "counter": counter}, 10.0),
             ("fail_first", {"counter": str(tmp_path / "fail")}, 10.0),
             ("add", {"a": 3, "b": 4, "counter": counter}, 10.0)]
    resources = {"pack_work_min": 30, "pack_max_work_min": 30, "pack_wait_s": 60, "timeout_min": 60, "pack_local": True}
    outcomes = _waiters(tmp_path, calls, resources)
    assert outcomes[0] == {"result": 3} and outcomes[2] == {"result": 7}
    assert "bad sample 17 in shard 3" in outcomes[1]["error"]  # the raising call fails its own output only
    records = [read_record(tmp_path / f"out{k}", tmp_path / "jobs" / "probe") for k in range(3)]
    assert len({r.job_id for r in records}) == 1  # a full pack (30 min): out at once, one allocation
    assert sorted(r.pack["index"] for r in records) == [0, 1, 2] and {r.pack["size"] for r in records} == {3}
    assert [r.state for r in records] == ["succeeded", "failed", "succeeded"]
    assert "bad sample 17" in Path(records[1].pack["log"]).read_text()  # each call has its own log
    assert "pack_work_min" not in records[0].resources  # the allocation asks for the job's resources only
    assert not list((tmp_path / "jobs" / "spool").glob("*.request.json"))


def test_a_short_pack_waits_until_nothing_else_comes(tmp_path: Path) -> None:
    counter = str(tmp_path / "count")
    calls = [("add", {"a": k, "b": 1, "counter": counter}, 1.0) for k in range(2)]
    outcomes = _waiters(tmp_path, calls, {"pack_work_min": 30, "pack_wait_s": 2, "timeout_min": 10, "pack_local": True})
    assert outcomes == [{"result": 1}, {"result": 2}]
    records = [read_record(tmp_path / f"out{k}", tmp_path / "jobs" / "probe") for k in range(2)]
    assert records[0].job_id == records[1].job_id and records[0].pack["size"] == 2


def test_an_item_that_runs_out_of_memory_is_retried_alone_with_more(tmp_path: Path) -> None:
    out = tmp_path / "feat.npy"
    resources = {"pack_work_min": 1, "mem_gb": 2, "timeout_min": 1, "escalation_factor": 2, "pack_local": True}
    result = launch(jobfns.oom_once, {"counter": str(tmp_path / "count")}, output=out, resources=resources,
                    log_dir=tmp_path / "logs", executor="local", poll_s=0.05)
    assert result == {"timeout_s": "120"}  # the retry got twice the time limit
    record = read_record(out, tmp_path / "logs")
    assert record.history[0]["outcome"] == "oom" and record.pack is None  # the retry is its own job
    assert (record.resources["mem_gb"], record.resources["timeout_min"]) == (4, 2)


def test_the_local_executor_packs_only_when_asked() -> None:
    from aloe.launch.pack import packed
    res = {"pack_work_min": 30}
    assert packed(res, "slurm") and not packed(res, "local") and packed({**res, "pack_local": True}, "local")
    assert not packed({}, "slurm") and not packed({**res, "pack_local": True}, "inprocess")


@pytest.mark.parametrize("bad", [{"pack_work_min": "30"}, {"pack_wait_s": 0}, {"pack_local": 1}])
def test_bad_packing_settings_name_the_key(tmp_path: Path, bad: dict) -> None:
    with pytest.raises(ValueError, match=f"resources.{next(iter(bad))}"):
        launch(jobfns.add, {"a": 1, "b": 1, "counter": "c"}, output=tmp_path / "o", resources=bad,
               log_dir=tmp_path / "logs", executor="local")
