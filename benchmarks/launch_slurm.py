"""Launcher on a real SLURM cluster: checks + submission benchmark (array vs one job per call).

Needs sbatch/srun/squeue on PATH (a one-node test cluster is enough, see "Launcher on a real SLURM
cluster" in benchmarks/README.md).

    python benchmarks/launch_slurm.py --jobs 20 --rounds 2 [--with-timeout]

Checks (assertions): a job runs and returns; a restarted launcher re-attaches to the running job
(the job executes once); SIGINT to the launcher cancels its job (gone from squeue); with
--with-timeout a job killed at its SLURM time limit is resubmitted with twice the time.
Benchmark: N tiny calls as ONE job array through ``launch_many`` versus N separate submissions
(what a per-rule submission does), interleaved, reporting scheduler submissions and wall times.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import submitit

from aloe.launch import launch, launch_many, read_record


def square(i: int) -> int:
    return i * i


def counted_sleep(counter: str, seconds: float, value: int) -> int:
    with open(counter, "a") as f:
        f.write("run\n")
    time.sleep(seconds)
    return value


def slow_first(counter: str) -> str:
    first = not Path(counter).exists()
    Path(counter).write_text("x")
    if first:
        time.sleep(600)
    return "second attempt finished"


def _squeue_ids() -> set[str]:
    out = subprocess.run(["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def _waiter(work: Path, output: Path, counter: Path, seconds: float, detach: bool) -> subprocess.Popen:
    code = (
        "import sys; sys.path.insert(0, %r); import launch_slurm as b; from aloe.launch import launch; "
        "launch(b.counted_sleep, {'counter': %r, 'seconds': %r, 'value': 5}, output=%r, resources={'timeout_min': 5}, "
        "log_dir=%r, executor='slurm', detach_on_interrupt=%r, poll_s=0.2)"
    ) % (str(Path(__file__).parent), str(counter), seconds, str(output), str(work / "logs"), detach)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_for(cond, what: str, limit: float = 120) -> None:
    end = time.monotonic() + limit
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError(what)
        time.sleep(0.2)


def checks(work: Path, with_timeout: bool) -> None:
    out = work / "one.json"
    assert (
        launch(
            square,
            {"i": 7},
            output=out,
            resources={"timeout_min": 5},
            log_dir=work / "logs",
            executor="slurm",
            poll_s=0.2,
        )
        == 49
    )
    print(
        "PASS job runs and returns; record:",
        json.dumps({k: v for k, v in vars(read_record(out, work / "logs")).items() if k != "history"}),
    )

    counter, out = work / "reattach.count", work / "reattach.json"
    waiter = _waiter(work, out, counter, 8, detach=False)
    _wait_for(lambda: counter.exists(), "job start")
    job_id = read_record(out, work / "logs").job_id
    waiter.kill()  # orchestrator crash; the SLURM job keeps running
    waiter.wait()
    assert job_id in _squeue_ids()
    value = launch(
        counted_sleep,
        {"counter": str(counter), "seconds": 8, "value": 5},
        output=out,
        resources={"timeout_min": 5},
        log_dir=work / "logs",
        executor="slurm",
        poll_s=0.2,
    )
    assert value == 5 and counter.read_text().count("run") == 1 and read_record(out, work / "logs").job_id == job_id
    print(f"PASS restart re-attached to running SLURM job {job_id}; it executed once")

    counter, out = work / "cancel.count", work / "cancel.json"
    waiter = _waiter(work, out, counter, 300, detach=False)
    _wait_for(lambda: counter.exists(), "job start")
    job_id = read_record(out, work / "logs").job_id
    waiter.send_signal(signal.SIGINT)
    waiter.wait(timeout=60)
    _wait_for(lambda: job_id not in _squeue_ids(), "job to leave the queue", 60)
    assert read_record(out, work / "logs").state == "cancelled"
    print(f"PASS SIGINT to the launcher cancelled SLURM job {job_id}")

    if with_timeout:
        counter, out = work / "timeout.count", work / "timeout.json"
        start = time.monotonic()
        value = launch(
            slow_first,
            {"counter": str(counter)},
            output=out,
            resources={"timeout_min": 1, "max_attempts": 2},
            log_dir=work / "logs",
            executor="slurm",
            poll_s=0.5,
        )
        rec = read_record(out, work / "logs")
        assert value == "second attempt finished" and rec.history[0]["outcome"] == "timeout", rec
        assert rec.resources["timeout_min"] == 2
        print(
            "PASS SLURM time limit -> classified timeout -> resubmitted with timeout_min 2 "
            f"({time.monotonic() - start:.0f} s)"
        )


def _submit_and_wait(folder: Path, n: int, as_array: bool) -> tuple[int, float, float]:
    """(scheduler jobs, submission seconds, total seconds) for n calls, same waiting either way."""
    ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
    ex.update_parameters(timeout_min=5, slurm_array_parallelism=n)
    t0 = time.perf_counter()
    if as_array:
        with ex.batch():
            js = [ex.submit(square, i) for i in range(n)]
    else:
        js = [ex.submit(square, i) for i in range(n)]
    submit_s = time.perf_counter() - t0
    assert [j.result() for j in js] == [i * i for i in range(n)]
    return len({j.job_id.split("_")[0] for j in js}), submit_s, time.perf_counter() - t0


def bench(work: Path, n: int, rounds: int) -> None:
    rows: dict[str, list[tuple[int, float, float]]] = {"array": [], "separate": []}
    for r in range(rounds):
        for mode in ("array", "separate"):  # interleaved
            rows[mode].append(_submit_and_wait(work / f"bench_{mode}_{r}", n, mode == "array"))
            jobs_, sub, total = rows[mode][-1]
            print(
                f"round {r} {mode:8s}: {jobs_:3d} scheduler job(s) for {n} calls, submit {sub:5.2f} s, "
                f"total {total:5.1f} s"
            )
    mean = {m: [sum(col) / len(col) for col in zip(*v)] for m, v in rows.items()}
    print(
        f"mean over {rounds} rounds: submit {mean['array'][1]:.2f} s (array) vs {mean['separate'][1]:.2f} s (separate),"
        f" ratio {mean['separate'][1] / mean['array'][1]:.1f}x;"
        f" total {mean['array'][2]:.1f} s vs {mean['separate'][2]:.1f} s"
    )
    outs = [work / "e2e" / f"o{i}.json" for i in range(n)]
    t0 = time.perf_counter()
    results = launch_many(
        square,
        [{"i": i} for i in range(n)],
        outputs=outs,
        log_dir=work / "e2e" / "logs",
        resources={"timeout_min": 5, "array_parallelism": n},
        executor="slurm",
        poll_s=0.2,
    )
    assert results == [i * i for i in range(n)]
    arrays = {read_record(o, work / "e2e" / "logs").job_id.split("_")[0] for o in outs}
    print(f"launch_many end to end: {n} calls in {len(arrays)} array job, {time.perf_counter() - t0:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--with-timeout", action="store_true")
    parser.add_argument("--skip-checks", action="store_true")
    args = parser.parse_args()
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory(dir=os.environ.get("LAUNCH_BENCH_DIR")) as tmp:
        if not args.skip_checks:
            checks(Path(tmp), args.with_timeout)
        bench(Path(tmp), args.jobs, args.rounds)


if __name__ == "__main__":
    # Job functions must keep one module name (launch_slurm) in every process: the launcher
    # identifies a call by the function's module and name.
    sys.path.insert(0, str(Path(__file__).parent))
    import launch_slurm

    launch_slurm.main()
