"""Status RPCs a waiting workflow costs slurmctld, with 1, 8 and 32 jobs in flight (issue 15).

    python benchmarks/slurm_status_rpcs.py --code before=/tmp/oldpoll --code after=. [--jobs 1 8 32]
        [--window-s 180] [--settle-s 20]

Needs root: it starts the one-node cluster of ``tests/slurm`` (``local_cluster.LocalSlurm``). For
each job count N and each ``--code NAME=DIR`` (an aloe checkout: this one, or a ``git worktree``
of an older commit for the figures before a change), it starts N waiting processes, as Snakemake
runs one per rule, each launching one sleeping job through ``aloe.launch`` with the workflow's
defaults (``poll_s`` 1 s; from the shared poller on, one status file for all, as the workflow
passes). The node runs two jobs at once; the others pend, and pending jobs are in flight for
polling. Once every job is queued and ``--settle-s`` has passed, it resets ``sdiag``, waits
``--window-s`` (no job starts or ends in it), and reads slurmctld's RPC counts by message type
and by user, slurmdbd's ``DBD_GET_JOBS_COND`` (sacct) from ``sacctmgr show stats``, and the
squeue / sacct processes the waiting processes ran (counted through PATH). Prints one JSON line
per case, then a markdown table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# squeue asks for job and partition info; a single-job query also for federation info
STATUS_TYPES = ("REQUEST_JOB_INFO", "REQUEST_JOB_INFO_SINGLE", "REQUEST_JOB_USER_INFO", "REQUEST_PARTITION_INFO",
                "REQUEST_FED_INFO", "REQUEST_NODE_INFO", "REQUEST_NODE_INFO_SINGLE", "REQUEST_JOB_STEP_INFO")
WAITER = """
import inspect, sys
import slurm_status_rpcs as bench
from aloe.launch import launch
output, log_dir, status_file = sys.argv[1:]
extra = {"status_file": status_file} if "status_file" in inspect.signature(launch).parameters else {}
launch(bench.nap, {"seconds": 900}, output=output, log_dir=log_dir, executor="slurm",
       resources={"cpus_per_task": 1, "mem_gb": 0.5, "timeout_min": 30, "name": "bench.status"}, **extra)
"""


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def _rpc_counts(text: str, section: str) -> dict[str, int]:
    """``name -> count`` of one "Remote Procedure Call statistics by ..." section of sdiag /
    ``sacctmgr show stats``."""
    counts, inside = {}, False
    for line in text.splitlines():
        if line.startswith("Remote Procedure Call statistics by"):
            inside = line.strip().endswith(section)
            continue
        m = re.match(r"\s+(\S+)\s+\(\s*\d+\)\s+count:(\d+)", line)
        if inside and m:
            counts[m.group(1)] = int(m.group(2))
        elif inside and line and not line.startswith(("\t", " ")):
            inside = False
    return counts


def _counting_bin(bin_dir: Path, calls: Path) -> str:
    bin_dir.mkdir(parents=True, exist_ok=True)
    for tool in ("squeue", "sacct"):
        (bin_dir / tool).write_text(f'#!/bin/sh\necho "{tool}" >> {calls}\nexec {shutil.which(tool)} "$@"\n')
        (bin_dir / tool).chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}"


def _wait(cond, what: str, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(1)


def run_case(slurm, work: Path, name: str, code: Path, jobs: int, window_s: float, settle_s: float) -> dict:
    calls = work / "calls.log"
    work.mkdir(parents=True)  # the waiters' working folder: ``python -c`` imports from it first
    env = {**os.environ, **slurm.env, "OMP_NUM_THREADS": "1", "PATH": _counting_bin(work / "bin", calls),
           "PYTHONPATH": os.pathsep.join([str(code), str(HERE)]), "HF_HUB_OFFLINE": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", WAITER, str(work / f"out{k}"), str(work / "jobs"),
                               str(work / "slurm_status.json")], env=env, cwd=work, stdout=subprocess.DEVNULL,
                              stderr=open(work / f"waiter{k}.err", "w"), start_new_session=True)
             for k in range(jobs)]

    def queued() -> int:
        return len(slurm.run("squeue", "-h", "-r", "-o", "%i", "-n", "bench.status").split())

    try:
        _wait(lambda: queued() == jobs, f"{jobs} jobs queued", 600)
        time.sleep(settle_s)
        before_calls = len(calls.read_text().splitlines()) if calls.exists() else 0
        dbd_before = _rpc_counts(slurm.run("sacctmgr", "show", "stats"), "message type")
        slurm.run("sdiag", "-r")
        start = time.monotonic()
        time.sleep(window_s)
        sdiag = slurm.run("sdiag")
        minutes = (time.monotonic() - start) / 60
        dbd_after = _rpc_counts(slurm.run("sacctmgr", "show", "stats"), "message type")
        lines = calls.read_text().splitlines()[before_calls:] if calls.exists() else []
        assert queued() == jobs and all(p.poll() is None for p in procs), "a job or waiter ended in the window"
    finally:
        for p in procs:
            _kill(p)
        slurm.run("scancel", "-n", "bench.status", check=False)
        _wait(lambda: queued() == 0, "jobs gone", 300)
    by_type = _rpc_counts(sdiag, "message type")
    by_user = _rpc_counts(sdiag, "user")
    status = {k: v for k, v in by_type.items() if k in STATUS_TYPES}
    sacct_dbd = dbd_after.get("DBD_GET_JOBS_COND", 0) - dbd_before.get("DBD_GET_JOBS_COND", 0)
    return {"code": name, "jobs": jobs, "window_min": round(minutes, 2),
            "status_rpcs_per_min": round(sum(status.values()) / minutes, 1),
            "status_rpcs_by_type_per_min": {k: round(v / minutes, 1) for k, v in sorted(status.items())},
            "all_rpcs_by_user_per_min": {k: round(v / minutes, 1) for k, v in by_user.items()},
            "squeue_calls_per_min": round(lines.count("squeue") / minutes, 1),
            "sacct_calls_per_min": round(lines.count("sacct") / minutes, 1),
            "dbd_get_jobs_cond_per_min": round(sacct_dbd / minutes, 1)}


def _kill(proc: subprocess.Popen) -> None:
    """SIGKILL a waiting process and its group (it would otherwise cancel its job on SIGTERM, which
    is what happens next anyway, but one scancel for all is quicker)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--code", action="append", required=True, metavar="NAME=DIR")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--window-s", type=float, default=180)
    parser.add_argument("--settle-s", type=float, default=20)
    args = parser.parse_args()
    codes = [(c.split("=", 1)[0], Path(c.split("=", 1)[1]).resolve()) for c in args.code]
    sys.path.insert(0, str(HERE.parent / "tests" / "slurm"))
    from local_cluster import LocalSlurm

    root = Path(tempfile.mkdtemp(prefix="status_rpcs_"))
    slurm = LocalSlurm(root / "cluster").start()
    try:
        version = slurm.run("sinfo", "-V").strip()
        print(json.dumps({"date": datetime.date.today().isoformat(), "machine": platform.node(),
                          "cpus": os.cpu_count(), "slurm": version,
                          "commits": {n: subprocess.run(["git", "-C", str(c), "rev-parse", "--short", "HEAD"],
                                                        capture_output=True, text=True).stdout.strip()
                                      for n, c in codes}}), flush=True)
        rows = []
        for jobs in args.jobs:
            for name, code in codes:
                row = run_case(slurm, root / f"{name}_{jobs}", name, code, jobs, args.window_s, args.settle_s)
                print(json.dumps(row), flush=True)
                rows.append(row)
    finally:
        slurm.stop()
    shutil.rmtree(root, ignore_errors=True)
    print("\n| code | jobs in flight | status RPCs/min | by type (per min) | squeue calls/min | sacct calls/min |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        types = ", ".join(f"{k} {v}" for k, v in r["status_rpcs_by_type_per_min"].items())
        print(f"| {r['code']} | {r['jobs']} | {r['status_rpcs_per_min']} | {types} | {r['squeue_calls_per_min']} | "
              f"{r['sacct_calls_per_min']} |")


if __name__ == "__main__":
    main()
