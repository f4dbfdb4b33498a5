"""The launcher on submitit's LocalExecutor: real job subprocesses, no mocks."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import launch_jobfns as jobfns
import pytest

from aloe.launch import LaunchError, launch, launch_many, read_record, record_path

HERE = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def job_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Job subprocesses import launch_jobfns by name: put this folder on their PYTHONPATH."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("NO_ALBUMENTATIONS_UPDATE", "1")


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def _run(fn, kwargs, out: Path, resources: dict | None = None, **kw):
    return launch(
        fn,
        kwargs,
        output=out,
        resources=resources or {},
        log_dir=out.parent / "logs",
        executor="local",
        poll_s=0.05,
        **kw,
    )


def test_local_job_runs_and_records_itself(tmp_path: Path) -> None:
    counter, out = tmp_path / "count", tmp_path / "sum.json"
    assert _run(jobfns.add, {"a": 2, "b": 3, "counter": str(counter)}, out, {"mem_gb": 1}) == 5
    record = read_record(out, out.parent / "logs")
    path = record_path(out, tmp_path / "logs")  # with the job logs, not beside the output
    assert record is not None and path.parent == tmp_path / "logs" / "records" and path.name.startswith("sum.json.")
    assert record.output == str(out) and not list(tmp_path.glob("*.job.json"))
    assert (record.cluster, record.state, record.attempt, record.history) == ("local", "succeeded", 1, [])
    assert record.folder == str(tmp_path / "logs")
    job_pid = int(record.job_id)
    assert job_pid != os.getpid() and _lines(counter) == 1
    assert (tmp_path / "logs" / f"{record.job_id}_0_result.pkl").exists()


def test_memory_error_is_retried_with_more_memory_and_time(tmp_path: Path) -> None:
    counter, out = tmp_path / "count", tmp_path / "feat.npy"
    resources = {"mem_gb": 2, "timeout_min": 1, "escalation_factor": 2}
    seen = _run(jobfns.oom_once, {"counter": str(counter)}, out, resources)
    assert seen == {"timeout_s": "120"}  # the second job really ran with the doubled time limit
    record = read_record(out, out.parent / "logs")
    assert _lines(counter) == 2
    assert (record.attempt, record.state) == (2, "succeeded")
    assert record.history[0]["outcome"] == "oom"
    assert record.history[0]["resources"] == {"mem_gb": 2, "timeout_min": 1, "escalation_factor": 2}
    assert (record.resources["mem_gb"], record.resources["timeout_min"]) == (4, 2)
    assert record.job_id != record.history[0]["job_id"]


def test_timeout_is_retried_with_more_time(tmp_path: Path) -> None:
    counter, out = tmp_path / "count", tmp_path / "probe.json"
    start = time.monotonic()
    # 0.04 min = 2.4 s: the local controller kills the first (sleeping) job at its time limit.
    value = _run(jobfns.slow_once, {"counter": str(counter), "value": 7}, out, {"timeout_min": 0.04, "max_attempts": 2})
    assert value == 7 and _lines(counter) == 2
    record = read_record(out, out.parent / "logs")
    assert [h["outcome"] for h in record.history] == ["timeout"]
    assert record.resources["timeout_min"] == 0.08
    assert time.monotonic() - start < 30


def test_plain_error_is_reported_not_retried_and_next_call_resubmits(tmp_path: Path) -> None:
    counter, out = tmp_path / "count", tmp_path / "lp.json"
    with pytest.raises(
        LaunchError, match=r"(?s)lp.json: job \d+ failed \(error\) on attempt 1.*bad sample 17 in shard 3"
    ):
        _run(jobfns.fail_first, {"counter": str(counter)}, out, {"max_attempts": 3})
    failed = read_record(out, out.parent / "logs")
    assert _lines(counter) == 1 and failed.state == "failed"
    # A restart does not re-attach to the failed job: it submits again, counting the attempt.
    assert _run(jobfns.fail_first, {"counter": str(counter)}, out) == "fixed"
    record = read_record(out, out.parent / "logs")
    assert _lines(counter) == 2
    assert (record.attempt, record.state) == (2, "succeeded")
    assert record.job_id != failed.job_id
    assert [h["outcome"] for h in record.history] == ["error"]


def test_record_of_other_arguments_is_not_reattached(tmp_path: Path) -> None:
    counter, out = tmp_path / "count", tmp_path / "x.json"
    assert _run(jobfns.add, {"a": 1, "b": 1, "counter": str(counter)}, out) == 2
    first = read_record(out, out.parent / "logs")
    assert _run(jobfns.add, {"a": 1, "b": 5, "counter": str(counter)}, out) == 6
    second = read_record(out, out.parent / "logs")
    assert _lines(counter) == 2 and second.call != first.call and second.attempt == 1


def test_checkpointable_job_is_requeued_by_submitit_not_resubmitted(tmp_path: Path) -> None:
    counter, started, out = tmp_path / "count", tmp_path / "started", tmp_path / "student"

    def preempt() -> None:  # what SLURM does on preemption: USR2 to the job's process
        while not started.exists() or not started.read_text():
            time.sleep(0.05)
        os.kill(int(started.read_text()), signal.SIGUSR2)

    threading.Thread(target=preempt, daemon=True).start()
    trainer = jobfns.Trainer()
    value = _run(trainer, {"counter": str(counter), "started": str(started), "value": 11}, out, {"max_num_timeout": 2})
    assert value == 11
    assert _lines(counter) == 2  # started twice: submitit's checkpoint + requeue
    record = read_record(out, out.parent / "logs")
    assert (record.attempt, record.history) == (1, [])  # one job, the launcher did not resubmit
    log = (tmp_path / "logs" / f"{record.job_id}_0_log.out").read_text()
    assert "Calling checkpoint method" in log and "Requeued job" in log


def test_launch_many_runs_every_item_within_parallelism(tmp_path: Path) -> None:
    outs = [tmp_path / f"knn_{i}.json" for i in range(5)]
    spans = [tmp_path / f"span_{i}" for i in range(5)]
    kwargs = [{"value": i, "span": str(s)} for i, s in enumerate(spans)]
    results = launch_many(
        jobfns.timed,
        kwargs,
        outputs=outs,
        resources={"array_parallelism": 2},
        log_dir=tmp_path / "logs",
        executor="local",
        poll_s=0.05,
    )
    assert results == [0, 1, 4, 9, 16]
    intervals = [tuple(map(float, s.read_text().split())) for s in spans]
    most_at_once = max(sum(a <= t < b for a, b in intervals) for t, _ in intervals)
    assert most_at_once <= 2
    records = [read_record(o, tmp_path / "logs") for o in outs]
    assert len({r.job_id for r in records}) == 5 and all(r.state == "succeeded" for r in records)
    with pytest.raises(ValueError, match="outputs must be distinct"):
        launch_many(
            jobfns.add, kwargs[:2], outputs=[outs[0], outs[0]], resources={}, log_dir=tmp_path, executor="local"
        )
